// ipfs-unixfs-importer options that reproduce Kubo's `ipfs add` semantics.
//
// A job is {cidVersion, rawLeaves, chunkSize, maxChildren, wrap, hidden,
// shardThreshold, jsShardCompare}; every field is optional and defaults to Kubo:
//   cidVersion 0; rawLeaves = (cidVersion === 1); chunkSize 262144 (fixed size);
//   maxChildren 174 (balanced layout); wrap false; shardThreshold 262144 bytes.
// Fixed on top: dag-pb "file" leaves when not raw, a one-chunk file is its own
// leaf (reduceSingleLeafToSelf), HAMT fanout 256, the 'links-bytes' estimate.
//
// Kubo (boxo) shards a folder when the estimate is >= the threshold, the JS
// importer when it is > the threshold, so threshold - 1 is passed on unless
// jsShardCompare is true. The JS importer also leaves links to sub-folders out
// of the estimate (Kubo counts them): folders near the threshold that hold
// sub-folders can still differ.
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

export const KUBO_CHUNK_SIZE = 262144
export const KUBO_MAX_CHILDREN = 174
export const KUBO_SHARD_THRESHOLD = 262144

export function kuboImporterOptions (job = {}) {
  const cidVersion = job.cidVersion ?? 0
  const rawLeaves = job.rawLeaves ?? (cidVersion === 1)
  const threshold = job.shardThreshold ?? KUBO_SHARD_THRESHOLD
  return {
    cidVersion,
    rawLeaves,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: job.wrap ?? false,
    chunker: fixedSize({ chunkSize: job.chunkSize ?? KUBO_CHUNK_SIZE }),
    layout: balanced({ maxChildrenPerNode: job.maxChildren ?? KUBO_MAX_CHILDREN }),
    shardSplitStrategy: 'links-bytes',
    shardSplitThresholdBytes: job.jsShardCompare ? threshold : threshold - 1,
    shardFanoutBits: 8,
    // results come back in input order whatever the concurrency
    fileImportConcurrency: 50,
    blockWriteConcurrency: 10
  }
}
