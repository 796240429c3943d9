//! The `berth` command line itself: what `--help` tells a user.
//!
//! Subcommands' arguments are built lazily (`#[command(defer = true)]`), after the summary
//! line each subcommand has in the top-level help. A doc comment on an argument struct would
//! then replace that summary in the subcommand's own help; this test catches it.

use std::process::Command;

fn berth(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth");
    assert!(out.status.success(), "berth {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// `(name, summary)` of every command listed under "Commands:" in `help`.
fn commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let (name, summary) = l.trim().split_once(char::is_whitespace)?;
            // clap appends visible aliases to the summary: "List images [aliases: list]".
            let summary = summary.split(" [alias").next().unwrap_or(summary);
            Some((name.to_string(), summary.trim().to_string()))
        })
        .filter(|(name, _)| name != "help")
        .collect()
}

fn assert_summaries(prefix: &[&str]) {
    let mut args = prefix.to_vec();
    args.push("--help");
    let listed = commands(&berth(&args));
    assert!(listed.len() > 3, "no commands in {prefix:?} --help");
    for (name, summary) in listed {
        let mut args = prefix.to_vec();
        args.extend([name.as_str(), "--help"]);
        let help = berth(&args);
        let first = help.lines().next().unwrap_or_default();
        assert_eq!(first, summary, "first line of `berth {}`", args.join(" "));
        assert!(
            help.contains("Usage: "),
            "`berth {}` has no usage",
            args.join(" ")
        );
        if name == "image" {
            assert_summaries(&["image"]);
        }
    }
}

#[test]
fn every_subcommands_help_starts_with_its_own_summary() {
    assert_summaries(&[]);
}

#[test]
fn run_help_lists_the_flags_of_run_create_and_resources() {
    let help = berth(&["run", "--help"]);
    for flag in [
        "--rm",
        "--name",
        "--network",
        "--memory",
        "--cpus",
        "--pids-limit",
    ] {
        assert!(help.contains(flag), "`berth run --help` lacks {flag}");
    }
}
