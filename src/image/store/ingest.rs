//! A load, pull or import in progress, and its rollback.

use super::{ImageRecord, LayerInfo, Result, Store};
use crate::fsutil::FileLock;
use crate::image::digest::Digest;
use crate::image::reference::Reference;
use crate::image::unpack::UnpackOutcome;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Mutex;

impl Store {
    /// Starts a load, pull or import: layers it adds are removed again unless it commits.
    pub fn begin_ingest(&self) -> Result<Ingest> {
        Ok(Ingest {
            store: self.clone(),
            _guard: self.ingest_guard()?,
            added: Mutex::new(Vec::new()),
        })
    }

    /// Removes layers that a failed ingest published, unless an image record uses them by now.
    fn discard_layers(&self, layers: &[Digest]) -> Result<()> {
        let _lock = self.lock()?;
        let live = self.referenced_layers()?;
        for diff_id in layers.iter().filter(|d| !live.contains(d.hex())) {
            self.remove_layer(diff_id)?;
        }
        Ok(())
    }

    fn referenced_layers(&self) -> Result<BTreeSet<String>> {
        let mut live = BTreeSet::new();
        for id in self.image_ids()? {
            live.extend(
                self.image(&id)?
                    .layers
                    .iter()
                    .map(|l| l.diff_id.hex().to_string()),
            );
        }
        Ok(live)
    }
}

/// One load, pull or import in progress. It holds the ingest lock (so garbage collection leaves
/// its layers alone), records the layers it publishes, and when dropped removes those that no
/// committed image uses: a failed ingest leaves the store as it found it.
pub struct Ingest {
    store: Store,
    _guard: FileLock,
    added: Mutex<Vec<Digest>>,
}

impl Ingest {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// [`Store::add_layer`], remembering a layer this ingest published. Safe to call from
    /// several threads at once.
    pub fn add_layer<R: Read>(
        &self,
        input: R,
        diff_id: &Digest,
        expected_blob: Option<(&Digest, u64)>,
    ) -> Result<LayerInfo> {
        let existed = self.store.has_layer(diff_id);
        let info = self.store.add_layer(input, diff_id, expected_blob)?;
        if !existed {
            self.remember(diff_id);
        }
        Ok(info)
    }

    /// [`Store::add_layer_unverified`], remembering a layer this ingest published.
    pub fn add_layer_unverified<R: Read>(&self, input: R) -> Result<(LayerInfo, UnpackOutcome)> {
        let (info, outcome) = self.store.add_layer_unverified(input)?;
        self.remember(&outcome.diff_id);
        Ok((info, outcome))
    }

    fn remember(&self, diff_id: &Digest) {
        if let Ok(mut added) = self.added.lock() {
            added.push(diff_id.clone());
        }
    }

    /// [`Store::commit_image`]: from here on the image's layers are referenced and stay.
    pub fn commit_image(
        &self,
        record: ImageRecord,
        config: &[u8],
        manifest: Option<&[u8]>,
        tags: &[Reference],
    ) -> Result<ImageRecord> {
        self.store.commit_image(record, config, manifest, tags)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let added = self.added.get_mut().map(std::mem::take).unwrap_or_default();
        if !added.is_empty() {
            if let Err(e) = self.store.discard_layers(&added) {
                tracing::warn!(
                    "could not remove the layers of a failed load: {e}; `berth image prune` will"
                );
            }
        }
    }
}
