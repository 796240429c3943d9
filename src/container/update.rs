//! `berth update`: new resource limits for running containers.
//!
//! Everything is checked before anything changes: the flags, every container (it exists and
//! runs), the merged limits of each, and every cgroup file each needs (on v2 this enables the
//! controllers, which changes no limit). Only then are the limits written, container by
//! container, and their records updated, so that `inspect` and the next start see them.

use super::state::{self, Status};
use super::{ContainerError, Result, Runtime};
use crate::cgroup::{self, Host, LimitError, ResourceFlags};

impl Runtime {
    pub fn update(&self, queries: &[String], flags: &ResourceFlags) -> Result<()> {
        if flags.is_empty() {
            return Err(super::config::ConfigError::Limit(LimitError::NothingToUpdate).into());
        }
        let change = flags
            .parse(&Host::detect())
            .map_err(super::config::ConfigError::from)?;
        let mut ready = Vec::new();
        for q in queries {
            let mut record = self.resolve(q)?;
            let info = self.info(record.clone())?;
            if info.status != Status::Running {
                return Err(ContainerError::NotRunning(q.clone()));
            }
            let merged = record.config.resources.merge(&change);
            merged
                .validate()
                .map_err(super::config::ConfigError::from)?;
            let cg = self.cgroup_of(&record.id)?;
            let prepared = cg.prepare(&merged)?;
            record.config.resources = merged;
            ready.push((record, cg, prepared));
        }
        let new_adj = change.oom_score_adj.is_some() || change.priority.is_some();
        for (record, cg, prepared) in ready {
            prepared.write()?;
            if new_adj {
                if let Some(adj) = record.config.resources.effective_oom_score_adj() {
                    for pid in cg.pids()? {
                        // A process that exited meanwhile is fine.
                        if let Err(e) = cgroup::set_oom_score_adj(pid, adj) {
                            tracing::debug!("{e}");
                        }
                    }
                }
            }
            state::write_record(&self.paths, &record)?;
        }
        Ok(())
    }
}
