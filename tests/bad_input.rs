//! Bad input to `berth run` that the other suites do not cover: a user the image does not
//! know and an image with no command. Each fails with exit 125, says what to do, and leaves
//! nothing behind.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::Env;
use std::fs;

#[test]
fn a_user_the_image_does_not_know_is_refused_and_nothing_is_left() {
    let env = Env::new();
    let r = env.berth(&["run", "--rm", "-u", "ghost", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("ghost"),
        "the error must name the user: {}",
        r.stderr
    );
    let r = env.berth(&["run", "--rm", "-u", "root:nogroup-here", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("nogroup-here"), "{}", r.stderr);
    env.assert_nothing_left();
}

#[test]
fn an_image_without_a_command_needs_one_on_the_command_line() {
    let env = Env::new();
    let rootfs = env.path().join("rootfs.tar");
    fs::write(&rootfs, container_env::busybox_layer()).unwrap();
    // docker import gives an image without Cmd or Entrypoint.
    env.ok(&["image", "import", rootfs.to_str().unwrap(), "nocmd:1"]);
    let r = env.berth(&["run", "--rm", "nocmd:1"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("no command specified"), "{}", r.stderr);
    env.assert_nothing_left();
    // With a command it runs.
    let out = env.ok(&["run", "--rm", "nocmd:1", "echo", "fine"]);
    assert_eq!(out.trim(), "fine");
}
