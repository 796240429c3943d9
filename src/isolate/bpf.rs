//! The layout of one seccomp filter: a binary search over syscall numbers.
//!
//! seccompiler lays a filter out as a linear chain, one comparison per syscall named: docker's
//! default profile becomes ~1,600 instructions that the kernel checks, converts and JIT-compiles
//! at every container start (measured: ~0.9 ms of `berth run`, the largest single step of the
//! container's init) and that every system call of the container walks until its number
//! matches. The same decisions as a balanced tree over ranges of syscall numbers take a few
//! hundred instructions and about eight comparisons a call.
//!
//! Only the dispatch on the syscall number is laid out here. The architecture check is
//! seccompiler's (anything but x86_64 kills the process), the argument conditions of each
//! syscall are seccompiler's own code for its [`SeccompRule`]s, in the same order, and the
//! return values are seccompiler's for each action. The tests run both layouts through a BPF
//! interpreter and check that they decide every call alike.

use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompRule};
use std::collections::BTreeMap;

// Classic BPF opcodes (linux/bpf_common.h), as seccompiler emits them.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// AUDIT_ARCH_X86_64 (EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE).
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_LEN: usize = 4096;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A run of syscall numbers, from `start` to the next segment's start, that leads to one
/// piece of code.
struct Segment {
    start: u32,
    /// `None` for the numbers no rule names.
    leaf: Option<Leaf>,
}

enum Leaf {
    /// Matched whatever the arguments.
    Always,
    /// Matched when one of the rules' conditions hold (one syscall number).
    Rules(Vec<SeccompRule>),
}

/// The filter that gives `matched` to the calls `chains` matches and `mismatch` to the rest:
/// syscall number -> alternative rules (empty: matched whatever the arguments), exactly as
/// `seccompiler::SeccompFilter::new` takes them.
pub(super) fn assemble(
    chains: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, String> {
    let returns = Returns {
        mismatch: u32::from(mismatch),
        matched: u32::from(matched),
    };
    if returns.mismatch == returns.matched {
        return Err("a seccomp filter needs two different actions".into());
    }
    let mut program = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, DATA_NR),
    ];
    let segments = segments(chains)?;
    program.extend(tree(&segments, returns));
    if program.len() >= MAX_LEN {
        return Err(format!(
            "the seccomp filter takes {} instructions, more than the kernel's {MAX_LEN}",
            program.len()
        ));
    }
    Ok(program)
}

/// Every syscall number from 0 to u32::MAX in runs that share their code, in order; numbers
/// no rule names (x32's 0x40000000 + n among them) lead to the mismatch action.
fn segments(chains: BTreeMap<i64, Vec<SeccompRule>>) -> Result<Vec<Segment>, String> {
    let mut out = vec![Segment {
        start: 0,
        leaf: None,
    }];
    let mut next: u64 = 0; // the first number not yet covered by a named syscall
    for (nr, rules) in chains {
        let nr = u32::try_from(nr).map_err(|_| format!("invalid syscall number {nr}"))?;
        if u64::from(nr) > next {
            push(&mut out, u32::try_from(next).unwrap_or(u32::MAX), None);
        }
        let leaf = if rules.is_empty() {
            Leaf::Always
        } else {
            Leaf::Rules(rules)
        };
        push(&mut out, nr, Some(leaf));
        next = u64::from(nr) + 1;
    }
    if let Ok(rest) = u32::try_from(next) {
        push(&mut out, rest, None);
    }
    Ok(out)
}

/// Appends a segment, or extends the last one when both lead to the same decision without
/// looking at arguments.
fn push(out: &mut Vec<Segment>, start: u32, leaf: Option<Leaf>) {
    let same = matches!(
        (out.last().map(|s| &s.leaf), &leaf),
        (Some(None), None) | (Some(Some(Leaf::Always)), Some(Leaf::Always))
    );
    if !same {
        out.push(Segment { start, leaf });
    }
}

/// The filter's return values (seccompiler's encoding of its two actions).
#[derive(Clone, Copy)]
struct Returns {
    mismatch: u32,
    matched: u32,
}

/// The code a segment leads to; it always ends in a return, so the accumulator may hold
/// anything afterwards (argument checks load arguments into it).
fn leaf_code(leaf: &Option<Leaf>, returns: Returns) -> Vec<sock_filter> {
    let Returns { mismatch, matched } = returns;
    match leaf {
        None => vec![stmt(RET_K, mismatch)],
        Some(Leaf::Always) => vec![stmt(RET_K, matched)],
        // As seccompiler chains them: each rule falls through to the matched return when its
        // conditions hold and jumps past it to the next rule when one fails.
        Some(Leaf::Rules(rules)) => {
            let mut code = Vec::new();
            for rule in rules {
                code.extend(BpfProgram::from(rule.clone()));
                code.push(stmt(RET_K, matched));
            }
            code.push(stmt(RET_K, mismatch));
            code
        }
    }
}

/// A balanced search over `segments` (non-empty, ascending starts) on the syscall number in
/// the accumulator; every jump is forward and relative, so subtrees are laid out on their own.
fn tree(segments: &[Segment], returns: Returns) -> Vec<sock_filter> {
    if let [only] = segments {
        return leaf_code(&only.leaf, returns);
    }
    let mid = segments.len() / 2;
    let low = tree(&segments[..mid], returns);
    let high = tree(&segments[mid..], returns);
    let pivot = segments[mid].start;
    let mut code = Vec::with_capacity(low.len() + high.len() + 2);
    match u8::try_from(low.len()) {
        // nr >= pivot: skip the lower half.
        Ok(skip) => code.push(jump(JMP_JGE_K, pivot, skip, 0)),
        // Conditional jumps reach 255 instructions; a long jump carries the rest.
        Err(_) => {
            code.push(jump(JMP_JGE_K, pivot, 0, 1));
            code.push(stmt(JMP_JA, low.len() as u32));
        }
    }
    code.extend(low);
    code.extend(high);
    code
}

/// A classic BPF interpreter for seccomp programs, enough for what seccompiler and
/// [`assemble`] emit: the tests compare layouts decision by decision with it.
#[cfg(test)]
pub(super) fn run(program: &[sock_filter], data: &[u32; 16]) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = &program[pc];
        pc += 1;
        match ins.code {
            LD_W_ABS => acc = data[ins.k as usize / 4],
            0x54 => acc &= ins.k, // BPF_ALU | BPF_AND | BPF_K
            JMP_JA => pc += ins.k as usize,
            JMP_JEQ_K | 0x25 | JMP_JGE_K | 0x45 => {
                let taken = match ins.code {
                    JMP_JEQ_K => acc == ins.k,
                    0x25 => acc > ins.k, // BPF_JGT
                    JMP_JGE_K => acc >= ins.k,
                    _ => acc & ins.k != 0, // BPF_JSET
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            RET_K => return ins.k,
            other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
        }
    }
}
