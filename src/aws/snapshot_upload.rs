//! Uploads a local raw disk image into a new EBS snapshot with the EBS direct APIs: 512 KiB blocks, zero blocks
//! skipped, `SNAPSHOT_UPLOAD_WORKERS` blocks in flight (each retried by the SDK's retry policy), progress logged.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::wait::During;
use super::{errors, OpExt};
use crate::log;

/// EBS direct APIs write snapshots in blocks of exactly this size.
pub const SNAPSHOT_BLOCK_BYTES: usize = 512 * 1024;
pub const GIBIBYTE: u64 = 1 << 30;
/// Blocks uploaded concurrently (bounded memory: this many blocks of 512 KiB, plus the read-ahead queue).
pub const SNAPSHOT_UPLOAD_WORKERS: usize = 32;
const READ_AHEAD_BLOCKS: usize = 64;

/// The smallest whole number of GiB that holds `bytes` (at least 1).
pub fn size_gib(bytes: u64) -> i64 {
    bytes.div_ceil(GIBIBYTE).max(1) as i64
}

pub struct UploadRequest {
    pub path: PathBuf,
    pub volume_size_gib: i64,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub client_token: String,
    pub encrypted: bool,
    pub kms_key_arn: Option<String>,
}

#[derive(Debug)]
pub struct Uploaded {
    pub snapshot_id: String,
    pub blocks_written: u64,
    pub blocks_skipped: u64,
}

struct Block {
    index: i32,
    data: Bytes,
}

/// Reads the image on a blocking thread into a bounded queue of non-zero blocks; returns the number of zero blocks.
fn spawn_reader(path: PathBuf, tx: tokio::sync::mpsc::Sender<Result<Block, String>>) -> tokio::task::JoinHandle<u64> {
    tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("opening {}: {e}", path.display())));
                return 0;
            }
        };
        let mut skipped = 0u64;
        let mut index = 0i32;
        loop {
            let mut buf = vec![0u8; SNAPSHOT_BLOCK_BYTES];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(format!("reading {}: {e}", path.display())));
                        return skipped;
                    }
                }
            }
            if filled == 0 {
                return skipped;
            }
            // The last block is zero-padded to the block size, as EBS requires.
            if buf.iter().all(|b| *b == 0) {
                skipped += 1;
            } else if tx.blocking_send(Ok(Block { index, data: Bytes::from(buf) })).is_err() {
                return skipped;
            }
            if filled < SNAPSHOT_BLOCK_BYTES {
                return skipped;
            }
            index += 1;
        }
    })
}

/// Uploads `req.path` into a new snapshot and completes it. On any failure the unfinished snapshot is deleted, so
/// nothing is left behind; the caller waits for the snapshot to become `completed`.
pub async fn upload(ebs: &aws_sdk_ebs::Client, ec2: &aws_sdk_ec2::Client, cancel: &CancellationToken, req: &UploadRequest) -> Result<Uploaded, String> {
    let total_blocks = std::fs::metadata(&req.path).map(|m| m.len().div_ceil(SNAPSHOT_BLOCK_BYTES as u64)).during(format_args!("reading {}", req.path.display()))?;
    let mut start = ebs
        .start_snapshot()
        .volume_size(req.volume_size_gib)
        .description(&req.description)
        .client_token(&req.client_token)
        .encrypted(req.encrypted)
        .set_tags(Some(req.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()));
    if let Some(kms) = &req.kms_key_arn {
        start = start.kms_key_arn(kms);
    }
    let started = start.send().await.op("EBS StartSnapshot", "")?;
    let snapshot_id = started.snapshot_id().unwrap_or_default().to_string();
    log::info("uploading disk image", &[("snapshot_id", snapshot_id.clone().into()), ("path", req.path.display().to_string().into()), ("blocks", total_blocks.into())]);

    match put_blocks(ebs, cancel, &snapshot_id, &req.path, total_blocks).await {
        Ok((digests, skipped)) => {
            let aggregate = linear_checksum(&digests);
            ebs.complete_snapshot()
                .snapshot_id(&snapshot_id)
                .changed_blocks_count(digests.len() as i32)
                .checksum(aggregate)
                .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
                .send()
                .await
                .op("EBS CompleteSnapshot", &snapshot_id)?;
            Ok(Uploaded { snapshot_id, blocks_written: digests.len() as u64, blocks_skipped: skipped })
        }
        Err(e) => {
            if let Err(del) = ec2.delete_snapshot().snapshot_id(&snapshot_id).send().await {
                log::warn("could not delete the unfinished snapshot", &[("snapshot_id", snapshot_id.clone().into()), ("error", errors::describe(&del).into())]);
            }
            Err(e)
        }
    }
}

/// SHA-256 over the concatenated SHA-256 digests of the written blocks, in block order (EBS "LINEAR" aggregation).
fn linear_checksum(digests: &BTreeMap<i32, [u8; 32]>) -> String {
    let mut h = Sha256::new();
    for d in digests.values() {
        h.update(d);
    }
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

async fn put_blocks(ebs: &aws_sdk_ebs::Client, cancel: &CancellationToken, snapshot_id: &str, path: &Path, total_blocks: u64) -> Result<(BTreeMap<i32, [u8; 32]>, u64), String> {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD_BLOCKS);
    let reader = spawn_reader(path.to_path_buf(), tx);
    let puts = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|block| async move {
            let block = block?;
            let digest: [u8; 32] = Sha256::digest(&block.data).into();
            ebs.put_snapshot_block()
                .snapshot_id(snapshot_id)
                .block_index(block.index)
                .data_length(SNAPSHOT_BLOCK_BYTES as i32)
                .checksum(base64::engine::general_purpose::STANDARD.encode(digest))
                .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                .block_data(ByteStream::from(block.data))
                .send()
                .await
                .op("EBS PutSnapshotBlock", format!("{snapshot_id} block {}", block.index))?;
            Ok::<_, String>((block.index, digest))
        })
        .buffer_unordered(SNAPSHOT_UPLOAD_WORKERS);
    futures::pin_mut!(puts);
    let mut digests = BTreeMap::new();
    let mut next_report = 10u64;
    loop {
        let next = tokio::select! {
            n = puts.next() => n,
            _ = cancel.cancelled() => return Err(format!("upload into {snapshot_id} stopped by Terraform")),
        };
        let Some(result) = next else { break };
        let (index, digest) = result?;
        digests.insert(index, digest);
        let percent = (index as u64 + 1) * 100 / total_blocks.max(1);
        if percent >= next_report {
            log::info("upload progress", &[("snapshot_id", snapshot_id.into()), ("percent_of_image", percent.into()), ("blocks_written", (digests.len() as u64).into())]);
            next_report = (percent / 10 + 1) * 10;
        }
    }
    let skipped = reader.await.during("reading the image")?;
    Ok((digests, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_gibibytes() {
        assert_eq!(size_gib(1), 1);
        assert_eq!(size_gib(GIBIBYTE), 1);
        assert_eq!(size_gib(GIBIBYTE + 1), 2);
    }

    #[tokio::test]
    async fn reader_skips_zero_blocks_and_pads_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let mut data = vec![0u8; SNAPSHOT_BLOCK_BYTES * 3 + 10];
        data[SNAPSHOT_BLOCK_BYTES + 5] = 7; // block 1
        data[SNAPSHOT_BLOCK_BYTES * 3 + 1] = 9; // block 3, partial
        std::fs::write(&path, &data).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let reader = spawn_reader(path, tx);
        let mut seen = Vec::new();
        while let Some(b) = rx.recv().await {
            let b = b.unwrap();
            assert_eq!(b.data.len(), SNAPSHOT_BLOCK_BYTES);
            seen.push(b.index);
        }
        assert_eq!(seen, vec![1, 3]);
        assert_eq!(reader.await.unwrap(), 2);
    }
}
