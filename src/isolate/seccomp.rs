//! Seccomp: docker's default profile as data, docker-format JSON profiles, and compiling a
//! profile to BPF (with `seccompiler`) for the container's capability set.
//!
//! A profile is a default action plus rules; a rule names syscalls, an action, optional
//! argument conditions (all must hold) and the capabilities it depends on (docker's
//! `includes.caps` / `excludes.caps`, resolved here against the container's final capability
//! set). Several rules for one syscall are alternatives.
//!
//! `seccompiler` compiles one match action per filter, so a profile becomes a stack of
//! filters: the base filter allows every call some rule matches and gives the default action
//! to the rest; then one filter per other action (clone3's ENOSYS, say) gives that action to
//! its matches and allows the rest. The kernel runs every filter and takes the most
//! restrictive answer (ERRNO before ALLOW; among equals, the newest filter's), which is the
//! profile's meaning.
//!
//! Only x86_64 is compiled: a call through another ABI (i386 `int 0x80`) fails seccompiler's
//! architecture check and kills the process, stricter than docker (which also allows x86/x32).

use super::syscalls;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a filter does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Log,
}

impl Action {
    fn to_seccompiler(self) -> SeccompAction {
        match self {
            Action::Allow => SeccompAction::Allow,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::KillThread => SeccompAction::KillThread,
            Action::KillProcess => SeccompAction::KillProcess,
            Action::Trap => SeccompAction::Trap,
            Action::Log => SeccompAction::Log,
        }
    }
}

/// A comparison of one syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `arg & mask == value`.
    MaskedEq(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgCond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    /// Compare only the low 32 bits (for `int` arguments, whose high bits are undefined).
    #[serde(default)]
    pub low32: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default)]
    pub args: Vec<ArgCond>,
    /// The rule applies only if the container has all of these capabilities (bit mask).
    #[serde(default)]
    pub caps_include: u64,
    /// The rule applies only if the container has none of these capabilities.
    #[serde(default)]
    pub caps_exclude: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub default_action: Action,
    pub rules: Vec<Rule>,
}

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

fn cap(n: u32) -> u64 {
    1u64 << n
}

// ---- docker's default profile (moby profiles/seccomp/default.json, x86_64) ----------------------

/// Allowed whatever the capabilities: the ordinary life of a process (files, memory, signals,
/// sockets, time, ids, IPC, scheduling). Missing on purpose, as in docker: keyrings (`add_key`,
/// `keyctl`, `request_key`), `io_uring_*`, `userfaultfd`, `kexec_*`, `pivot_root`, swap,
/// `nfsservctl`, `uselib`, `ustat`, `sysfs`, `_sysctl`, `lookup_dcookie`, `vm86`, and the calls
/// of the capability-gated groups below.
#[rustfmt::skip]
const ALWAYS: &[&str] = &[
    // files and directories
    "access", "chdir", "chmod", "chown", "close", "close_range", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate", "fanotify_mark", "fchdir",
    "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync", "flock", "fstat",
    "fstatfs", "fsync", "ftruncate", "futimesat", "getcwd", "getdents", "getdents64",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "lchown", "link",
    "linkat", "lseek", "lstat", "mkdir", "mkdirat", "mknod", "mknodat", "name_to_handle_at",
    "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "rename",
    "renameat", "renameat2", "rmdir", "sendfile", "splice", "stat", "statfs", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "umask", "unlink",
    "unlinkat", "utime", "utimensat", "utimes", "vmsplice", "write", "writev", "cachestat",
    "listmount", "statmount",
    // extended attributes
    "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "getxattrat", "lgetxattr",
    "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lsetxattr", "removexattr",
    "removexattrat", "setxattr", "setxattrat",
    // polling, events, async I/O
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "io_cancel", "io_destroy",
    "io_getevents", "io_pgetevents", "io_setup", "io_submit", "ioctl", "poll", "pipe", "pipe2",
    "ppoll", "pselect6", "select", "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime",
    "timerfd_settime",
    // memory
    "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mremap", "mseal", "msync", "munlock",
    "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    // processes, threads, signals
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "futex",
    "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "get_robust_list",
    "get_thread_area", "getcpu", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrlimit", "getrusage", "getsid", "gettid", "ioprio_get", "ioprio_set", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "modify_ldt", "pause",
    "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "process_mrelease", "restart_syscall",
    "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "set_robust_list",
    "set_thread_area", "set_tid_address", "setpgid", "setpriority", "setrlimit", "setsid",
    "sigaltstack", "tgkill", "tkill", "uretprobe", "vfork", "wait4", "waitid",
    // ids
    "getegid", "geteuid", "getgid", "getgroups", "getresgid", "getresuid", "getuid", "setfsgid",
    "setfsuid", "setgid", "setgroups", "setregid", "setresgid", "setresuid", "setreuid", "setuid",
    // sockets (docker's newer profiles refuse AF_VSOCK; not needed here)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
    "recvfrom", "recvmmsg", "recvmsg", "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown",
    "socket", "socketpair",
    // System V and POSIX IPC
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink",
    "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop", "shmat",
    "shmctl", "shmdt", "shmget",
    // time and system information (reading; setting the clock is CAP_SYS_TIME below)
    "adjtimex", "alarm", "clock_adjtime", "clock_getres", "clock_gettime", "clock_nanosleep",
    "getitimer", "getrandom", "gettimeofday", "nanosleep", "setitimer", "sysinfo", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime", "times",
    "uname",
    // tracing one's own children: allowed since kernel 4.8 closed the seccomp bypass
    "process_vm_readv", "process_vm_writev", "ptrace",
];

/// Calls allowed only with a capability (docker's `includes.caps` groups).
const CAP_GATED: &[(u32, &[&str])] = &[
    (2, &["open_by_handle_at"]), // CAP_DAC_READ_SEARCH
    (
        21, // CAP_SYS_ADMIN: namespaces, mounts, and the rest of the admin surface
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount2",
            "unshare",
        ],
    ),
    (22, &["reboot"]),                                       // CAP_SYS_BOOT
    (18, &["chroot"]),                                       // CAP_SYS_CHROOT
    (16, &["delete_module", "init_module", "finit_module"]), // CAP_SYS_MODULE
    (20, &["acct"]),                                         // CAP_SYS_PACCT
    (19, &["kcmp", "pidfd_getfd", "process_madvise"]),       // CAP_SYS_PTRACE
    (17, &["iopl", "ioperm"]),                               // CAP_SYS_RAWIO
    (25, &["settimeofday", "clock_settime"]),                // CAP_SYS_TIME
    (26, &["vhangup"]),                                      // CAP_SYS_TTY_CONFIG
    (
        23,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ), // SYS_NICE
    (34, &["syslog"]),                                       // CAP_SYSLOG
    (39, &["bpf"]),                                          // CAP_BPF
    (38, &["perf_event_open"]),                              // CAP_PERFMON
];

/// The namespace flags of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// personality(2) values docker allows: PER_LINUX, PER_LINUX32, ADDR_NO_RANDOMIZE (alone and
/// with PER_LINUX32), and 0xffffffff (query).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

fn rule(names: &[&str], action: Action) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action,
        args: Vec::new(),
        caps_include: 0,
        caps_exclude: 0,
    }
}

/// docker's default profile: EPERM for everything not allowed below.
pub fn default_profile() -> Profile {
    let mut rules = vec![rule(ALWAYS, Action::Allow)];
    for &value in PERSONALITIES {
        let mut r = rule(&["personality"], Action::Allow);
        r.args.push(ArgCond {
            index: 0,
            op: Op::Eq,
            value,
            low32: true,
        });
        rules.push(r);
    }
    for &(c, names) in CAP_GATED {
        let mut r = rule(names, Action::Allow);
        r.caps_include = cap(c);
        rules.push(r);
    }
    // Without CAP_SYS_ADMIN: clone (fork, threads) without namespace flags; clone3, whose
    // flags sit in memory BPF cannot read, fails with ENOSYS so libc falls back to clone.
    let mut r = rule(&["clone"], Action::Allow);
    r.args.push(ArgCond {
        index: 0,
        op: Op::MaskedEq(CLONE_NS_FLAGS),
        value: 0,
        low32: false,
    });
    r.caps_exclude = cap(21);
    rules.push(r);
    let mut r = rule(&["clone3"], Action::Errno(ENOSYS));
    r.caps_exclude = cap(21);
    rules.push(r);
    Profile {
        default_action: Action::Errno(EPERM),
        rules,
    }
}

// ---- docker-format JSON profiles -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<JsonArchMap>,
    #[serde(default)]
    syscalls: Vec<JsonSyscall>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    listener_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArchMap {
    architecture: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    includes: Option<JsonFilter>,
    #[serde(default)]
    excludes: Option<JsonFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JsonFilter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

fn is_x86_64(arch: &str) -> bool {
    matches!(arch, "SCMP_ARCH_X86_64" | "amd64" | "x86_64")
}

fn action(name: &str, errno: Option<u32>) -> Result<Action, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        other => {
            return Err(format!(
                "action {other:?} is not supported (supported: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, \
                 SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, \
                 SCMP_ACT_LOG)"
            ))
        }
    })
}

fn op(arg: &JsonArg) -> Result<(Op, u64), String> {
    Ok(match arg.op.as_str() {
        "SCMP_CMP_EQ" => (Op::Eq, arg.value),
        "SCMP_CMP_NE" => (Op::Ne, arg.value),
        "SCMP_CMP_LT" => (Op::Lt, arg.value),
        "SCMP_CMP_LE" => (Op::Le, arg.value),
        "SCMP_CMP_GT" => (Op::Gt, arg.value),
        "SCMP_CMP_GE" => (Op::Ge, arg.value),
        // docker: value is the mask, valueTwo the expected masked value.
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq(arg.value), arg.value_two),
        other => return Err(format!("argument comparison {other:?} is not supported")),
    })
}

/// Parses a docker-format seccomp profile (the subset berth supports; anything else is an
/// error that says what).
pub fn parse_docker_json(text: &str) -> Result<Profile, String> {
    let p: JsonProfile =
        serde_json::from_str(text).map_err(|e| format!("not a seccomp profile: {e}"))?;
    if !p.flags.is_empty() {
        return Err(format!("\"flags\" {:?} are not supported", p.flags));
    }
    if p.listener_path.is_some() {
        return Err("\"listenerPath\" (SCMP_ACT_NOTIFY) is not supported".into());
    }
    let arches: Vec<&str> = p
        .architectures
        .iter()
        .map(String::as_str)
        .chain(p.arch_map.iter().map(|a| a.architecture.as_str()))
        .collect();
    if !arches.is_empty() && !arches.iter().any(|a| is_x86_64(a)) {
        return Err(format!(
            "the profile's architectures {arches:?} do not include SCMP_ARCH_X86_64"
        ));
    }
    let default_action = action(&p.default_action, p.default_errno_ret)?;
    let mut rules = Vec::new();
    for (i, s) in p.syscalls.iter().enumerate() {
        let mut names = s.names.clone();
        names.extend(s.name.clone());
        if names.is_empty() {
            return Err(format!("syscalls[{i}] names no syscall"));
        }
        let act = action(&s.action, s.errno_ret).map_err(|e| format!("syscalls[{i}]: {e}"))?;
        let inc = s.includes.as_ref();
        let exc = s.excludes.as_ref();
        // Rules for other architectures do not apply here.
        if inc.is_some_and(|f| !f.arches.is_empty() && !f.arches.iter().any(|a| is_x86_64(a)))
            || exc.is_some_and(|f| f.arches.iter().any(|a| is_x86_64(a)))
        {
            continue;
        }
        // minKernel: every kernel berth runs on (openat2 needs 5.6) is past docker's 4.8 gate.
        let _ = inc.and_then(|f| f.min_kernel.as_ref());
        let caps = |f: Option<&JsonFilter>| -> Result<u64, String> {
            let mut mask = 0;
            for c in f.map(|f| f.caps.as_slice()).unwrap_or(&[]) {
                let n = super::caps::number(c)
                    .ok_or_else(|| format!("syscalls[{i}]: unknown capability {c:?}"))?;
                mask |= cap(n);
            }
            Ok(mask)
        };
        let mut args = Vec::new();
        for a in s.args.iter().flatten() {
            if a.index > 5 {
                return Err(format!("syscalls[{i}]: argument index {} > 5", a.index));
            }
            let (op, value) = op(a).map_err(|e| format!("syscalls[{i}]: {e}"))?;
            args.push(ArgCond {
                index: a.index,
                op,
                value,
                low32: false,
            });
        }
        rules.push(Rule {
            names,
            action: act,
            args,
            caps_include: caps(inc)?,
            caps_exclude: caps(exc)?,
        });
    }
    Ok(Profile {
        default_action,
        rules,
    })
}

// ---- compiling and installing --------------------------------------------------------------------

/// Syscall number -> its alternative argument conditions (`None`: unconditional).
type Alternatives = BTreeMap<i64, Vec<Option<Vec<ArgCond>>>>;

/// The BPF programs of a profile for a container with capabilities `caps`, in install order.
pub fn compile(profile: &Profile, caps: u64) -> Result<Vec<BpfProgram>, String> {
    compile_with(profile, caps, build)
}

/// [`compile`] with the layout of each filter given: `layout(rules, mismatch, matched)`.
/// The tests pass seccompiler's own linear layout as the reference for [`build`]'s.
fn compile_with(
    profile: &Profile,
    caps: u64,
    layout: impl Fn(Alternatives, Action, Action) -> Result<BpfProgram, String>,
) -> Result<Vec<BpfProgram>, String> {
    // action -> syscall -> alternatives (None: unconditional)
    let mut by_action: Vec<(Action, Alternatives)> = Vec::new();
    for r in &profile.rules {
        if r.caps_include & caps != r.caps_include || r.caps_exclude & caps != 0 {
            continue;
        }
        let idx = match by_action.iter().position(|(a, _)| *a == r.action) {
            Some(i) => i,
            None => {
                by_action.push((r.action, BTreeMap::new()));
                by_action.len() - 1
            }
        };
        for name in &r.names {
            // Names of other architectures (chown32, …) are skipped, as libseccomp does.
            let Some(nr) = syscalls::number(name) else {
                tracing::debug!("seccomp: no syscall {name:?} on x86_64; rule skipped");
                continue;
            };
            let alt = (!r.args.is_empty()).then(|| r.args.clone());
            by_action[idx].1.entry(nr).or_default().push(alt);
        }
    }
    let mut programs = Vec::new();
    // The base filter: anything some rule matches passes; the rest gets the default action.
    if profile.default_action != Action::Allow {
        let mut all: Alternatives = BTreeMap::new();
        for (_, m) in &by_action {
            for (nr, alts) in m {
                all.entry(*nr).or_default().extend(alts.iter().cloned());
            }
        }
        programs.push(layout(all, profile.default_action, Action::Allow)?);
    }
    for (act, m) in by_action {
        if act != Action::Allow && act != profile.default_action {
            programs.push(layout(m, Action::Allow, act)?);
        }
    }
    Ok(programs)
}

fn build(rules: Alternatives, mismatch: Action, matched: Action) -> Result<BpfProgram, String> {
    let chains = rule_chains(rules)?;
    super::bpf::assemble(chains, mismatch.to_seccompiler(), matched.to_seccompiler())
}

/// seccompiler's rules for each syscall: none when one alternative is unconditional (the call
/// matches whatever its arguments), else one rule per alternative.
fn rule_chains(rules: Alternatives) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut out: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, alts) in rules {
        // One unconditional alternative makes the call match whatever its arguments.
        if alts.iter().any(Option::is_none) {
            out.insert(nr, Vec::new());
            continue;
        }
        let mut chain = Vec::new();
        for conds in alts.into_iter().flatten() {
            let mut cs = Vec::new();
            for c in conds {
                let op = match c.op {
                    Op::Eq => SeccompCmpOp::Eq,
                    Op::Ne => SeccompCmpOp::Ne,
                    Op::Lt => SeccompCmpOp::Lt,
                    Op::Le => SeccompCmpOp::Le,
                    Op::Gt => SeccompCmpOp::Gt,
                    Op::Ge => SeccompCmpOp::Ge,
                    Op::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
                };
                let len = if c.low32 {
                    SeccompCmpArgLen::Dword
                } else {
                    SeccompCmpArgLen::Qword
                };
                cs.push(
                    SeccompCondition::new(c.index, len, op, c.value)
                        .map_err(|e| format!("bad argument condition for syscall {nr}: {e}"))?,
                );
            }
            chain
                .push(SeccompRule::new(cs).map_err(|e| format!("bad rule for syscall {nr}: {e}"))?);
        }
        out.insert(nr, chain);
    }
    Ok(out)
}

/// Installs `programs` on the calling thread. Without no_new_privs the kernel requires
/// CAP_SYS_ADMIN here (a filter could otherwise confuse a setuid program it then execs).
pub fn install(programs: &[BpfProgram]) -> std::io::Result<()> {
    for prog in programs {
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            // seccompiler's sock_filter is #[repr(C)] with the kernel's layout.
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(SET_MODE_FILTER) reads the program we own for the call's duration.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolate::bpf;
    use seccompiler::{sock_filter, SeccompFilter, TargetArch};

    /// The same filters as [`compile`], laid out by seccompiler itself (a linear chain): the
    /// reference the binary-search layout is checked against.
    fn compile_linear(profile: &Profile, caps: u64) -> Vec<BpfProgram> {
        let linear = |rules: Alternatives, mismatch: Action, matched: Action| {
            let f = SeccompFilter::new(
                rule_chains(rules)?,
                mismatch.to_seccompiler(),
                matched.to_seccompiler(),
                TargetArch::x86_64,
            )
            .map_err(|e| e.to_string())?;
            BpfProgram::try_from(f).map_err(|e| e.to_string())
        };
        compile_with(profile, caps, linear).unwrap()
    }

    /// `struct seccomp_data` as 32-bit words: nr, arch, instruction pointer, six arguments.
    fn data(arch: u32, nr: u32, args: &[u64; 6]) -> [u32; 16] {
        let mut d = [0u32; 16];
        d[0] = nr;
        d[1] = arch;
        for (i, a) in args.iter().enumerate() {
            d[4 + 2 * i] = *a as u32;
            d[5 + 2 * i] = (*a >> 32) as u32;
        }
        d
    }

    /// Argument values around every constant the profile compares with: equal, one off,
    /// masked, with the high half changed, and the extremes.
    fn interesting_values(profile: &Profile) -> Vec<u64> {
        let mut v = vec![0, 1, u64::MAX, u64::from(u32::MAX), 1 << 32, 1 << 63];
        for r in &profile.rules {
            for c in &r.args {
                let mut around = vec![c.value, c.value.wrapping_add(1), c.value.wrapping_sub(1)];
                if let Op::MaskedEq(m) = c.op {
                    around.extend([m, !m, c.value | !m, c.value ^ m]);
                }
                for x in around {
                    v.extend([x, x ^ 0xffff_ffff_0000_0000, x & 0xffff_ffff, x | 1 << 40]);
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Checks that both layouts return the same for every syscall number (and x32's, and
    /// beyond), every architecture seen on x86_64, and arguments around every constant.
    fn assert_same_decisions(profile: &Profile, caps: u64) {
        let tree = compile(profile, caps).unwrap();
        let linear = compile_linear(profile, caps);
        assert_eq!(tree.len(), linear.len());
        let values = interesting_values(profile);
        let mut numbers: Vec<u32> = (0..1100).collect();
        numbers.extend((0..600).map(|n| 0x4000_0000 + n));
        numbers.extend([0x7fff_ffff, 0x8000_0000, u32::MAX - 1, u32::MAX]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (t, l) in tree.iter().zip(&linear) {
            let same = |d: &[u32; 16]| assert_eq!(bpf::run(t, d), bpf::run(l, d), "{d:x?}");
            for arch in [0xc000_003e, 0x4000_0003, 0xc000_00b7, 0] {
                for &nr in &numbers {
                    same(&data(arch, nr, &[0; 6]));
                    same(&data(arch, nr, &[u64::MAX; 6]));
                }
            }
            // Arguments: each value in each position, and random mixes of them.
            for &nr in &numbers[..1100] {
                for i in 0..6 {
                    for &x in &values {
                        let mut args = [0; 6];
                        args[i] = x;
                        same(&data(0xc000_003e, nr, &args));
                    }
                }
                for _ in 0..64 {
                    let args: [u64; 6] =
                        std::array::from_fn(|_| values[next() as usize % values.len()]);
                    same(&data(0xc000_003e, nr, &args));
                }
            }
        }
    }

    #[test]
    fn tree_layout_decides_as_seccompiler_does() {
        let docker = default_profile();
        let (tree, linear) = (
            compile(&docker, super::super::DOCKER_DEFAULT_CAPS).unwrap(),
            compile_linear(&docker, super::super::DOCKER_DEFAULT_CAPS),
        );
        // The point of the layout: a fraction of the instructions to check and JIT.
        assert!(
            tree[0].len() * 3 < linear[0].len(),
            "{} vs {}",
            tree[0].len(),
            linear[0].len()
        );
        for caps in [
            super::super::DOCKER_DEFAULT_CAPS,
            0,
            u64::MAX >> 23,
            1 << 21,
        ] {
            assert_same_decisions(&docker, caps);
        }
        // Every comparison, several actions, alternatives and conjunctions on one call.
        let custom = parse_docker_json(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[
              {"names":["read","write","close","fstat","mmap"],"action":"SCMP_ACT_ALLOW"},
              {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[
                {"index":1,"value":21505,"op":"SCMP_CMP_EQ"}]},
              {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[
                {"index":1,"value":4294967295,"op":"SCMP_CMP_LE"},
                {"index":2,"value":16,"op":"SCMP_CMP_GT"}]},
              {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[
                {"index":0,"value":40,"op":"SCMP_CMP_NE"},
                {"index":1,"value":8,"op":"SCMP_CMP_LT"},
                {"index":2,"value":5,"op":"SCMP_CMP_GE"}]},
              {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[
                {"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
              {"names":["kill","tkill"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
              {"names":["ptrace"],"action":"SCMP_ACT_KILL_PROCESS"},
              {"names":["uname"],"action":"SCMP_ACT_TRAP","args":[
                {"index":0,"value":9223372036854775808,"op":"SCMP_CMP_GE"}]},
              {"names":["getpid"],"action":"SCMP_ACT_LOG"},
              {"names":["mount","umount2"],"action":"SCMP_ACT_ALLOW",
               "includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#,
        )
        .unwrap();
        for caps in [0, 1 << 21] {
            assert_same_decisions(&custom, caps);
        }
        let allow_default = Profile {
            default_action: Action::Allow,
            rules: vec![rule(
                &["ptrace", "personality", "bpf"],
                Action::Errno(EPERM),
            )],
        };
        assert_same_decisions(&allow_default, 0);
    }

    #[test]
    fn long_runs_jump_far() {
        // Every syscall conditional: the lower halves outgrow a conditional jump's 255.
        let names: Vec<&str> = syscalls::X86_64.iter().take(150).map(|(n, _)| *n).collect();
        let mut r = rule(&names, Action::Allow);
        r.args.push(ArgCond {
            index: 3,
            op: Op::Eq,
            value: 7,
            low32: false,
        });
        let p = Profile {
            default_action: Action::Errno(EPERM),
            rules: vec![r],
        };
        let program = &compile(&p, 0).unwrap()[0];
        assert!(program
            .iter()
            .any(|i: &sock_filter| i.code == 0x05 && i.k > 255));
        let on = |nr: u32, a3: u64| bpf::run(program, &data(0xc000_003e, nr, &[0, 0, 0, a3, 0, 0]));
        for (_, nr) in syscalls::X86_64.iter().take(150) {
            assert_eq!(on(*nr as u32, 7), libc::SECCOMP_RET_ALLOW, "{nr}");
            assert_eq!(on(*nr as u32, 8), libc::SECCOMP_RET_ERRNO | EPERM, "{nr}");
        }
    }

    #[test]
    fn every_default_name_is_an_x86_64_syscall() {
        for r in default_profile().rules {
            for n in r.names {
                assert!(syscalls::number(&n).is_some(), "{n}");
            }
        }
        let p = compile(&default_profile(), super::super::DOCKER_DEFAULT_CAPS).unwrap();
        assert_eq!(p.len(), 2, "base filter and clone3's ENOSYS");
        assert_eq!(
            compile(&default_profile(), u64::MAX >> 23).unwrap().len(),
            1
        );
    }

    #[test]
    fn docker_json_subset() {
        let p = parse_docker_json(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
               "syscalls":[{"names":["read","chown32"],"action":"SCMP_ACT_ALLOW"},
                 {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                  "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                 {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},
                 {"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["s390x"]}}]}"#,
        )
        .unwrap();
        assert_eq!(p.default_action, Action::Errno(EPERM));
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[2].caps_include, cap(21));
        assert!(compile(&p, 0).is_ok());
        for bad in [
            r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_AARCH64"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_LOG"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_WEIRD"}]}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_NOPE"]}}]}"#,
            "[]",
        ] {
            assert!(parse_docker_json(bad).is_err(), "{bad}");
        }
    }
}
