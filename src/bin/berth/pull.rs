//! Placeholder until the registry client lands: `pull`, `login`, `logout`.

use berth::options::GlobalOptions;
use clap::Args;

#[derive(Args)]
pub struct PullArgs {
    pub name: String,
}
#[derive(Args)]
pub struct LoginArgs {
    pub registry: String,
}
#[derive(Args)]
pub struct LogoutArgs {
    pub registry: String,
}

pub fn run_pull(_g: &GlobalOptions, _a: &PullArgs) -> anyhow::Result<i32> {
    anyhow::bail!("pull is not available yet")
}
pub fn run_login(_g: &GlobalOptions, _a: &LoginArgs) -> anyhow::Result<i32> {
    anyhow::bail!("login is not available yet")
}
pub fn run_logout(_g: &GlobalOptions, _a: &LogoutArgs) -> anyhow::Result<i32> {
    anyhow::bail!("logout is not available yet")
}
