#!/usr/bin/env node
// Compute UnixFS CIDs with the real JS importer (ipfs-unixfs-importer), offline.
//
// Defaults follow Kubo's `ipfs add` rather than the JS importer's own defaults:
//   CIDv0, raw leaves only when CIDv1 (unless --raw-leaves/--no-raw-leaves),
//   fixed-size chunks of 262144 bytes, balanced layout with 174 links per node,
//   a single-chunk file is the leaf itself (reduceSingleLeafToSelf), dag-pb
//   "file" leaves, dotfiles skipped unless --hidden, directories switched to a
//   HAMT (fanout 256) when the summed estimate (name bytes + CID bytes) of their
//   links reaches the threshold.
//
// Kubo (boxo) shards when the estimate is >= the threshold, the JS importer when
// it is > the threshold; we pass threshold - 1 to the JS importer so that both
// agree (--js-shard-compare keeps the JS rule). Note also that the JS importer
// leaves links to sub-folders out of that estimate (their CID is not known yet
// when it decides), while Kubo counts them.
//
// Usage, one import:
//   node unixfs_import.mjs PATH [--cid-version 0|1] [--raw-leaves|--no-raw-leaves]
//        [--chunk-size N] [--max-children N] [--wrap] [--hidden]
//        [--shard-threshold N] [--js-shard-compare] [--entries]
//   prints {"root": CID, "entries": {relpath: CID, ...}}   (entries with --entries)
//
// Usage, many imports in one process (fast):
//   echo '{"jobs": [{"path": P, "cidVersion": 1, "rawLeaves": true, "chunkSize": N,
//           "maxChildren": N, "wrap": false, "hidden": false, "shardThreshold": N,
//           "entries": false}, ...]}' | node unixfs_import.mjs --batch
//   prints {"results": [{"root": CID, "entries": {...}} | {"error": msg}, ...]}
//
// Entry paths are relative to the imported root ("" is the root itself); with
// --wrap they start with the root's name and "" is the wrapping folder, as
// `ipfs add -w` lists them. CIDv0 prints in base58btc, CIDv1 in base32.
import './polyfill.mjs'
import { parseArgs } from 'node:util'
import { importer } from 'ipfs-unixfs-importer'
import { candidates } from './fswalk.mjs'
import { kuboImporterOptions } from './importopts.mjs'

// Blocks are only hashed, never kept.
const discard = { put: async (cid) => cid }

export async function importPath (job) {
  const options = kuboImporterOptions(job)
  const source = candidates(job.path, { hidden: job.hidden ?? false, withPath: true })
  const entries = {}
  let last
  let rootName
  for await (const entry of importer(source, discard, options)) {
    last = entry
    const path = entry.path ?? ''
    if (rootName === undefined && !options.wrapWithDirectory) {
      rootName = path.split('/')[0]
    }
    entries[path] = entry.cid.toString()
  }
  if (last === undefined) {
    throw new Error(`nothing imported from ${job.path}`)
  }
  const result = { root: last.cid.toString() }
  if (job.entries) {
    const rel = {}
    for (const [path, cid] of Object.entries(entries)) {
      if (options.wrapWithDirectory) {
        rel[path] = cid
      } else {
        rel[path === rootName ? '' : path.slice(rootName.length + 1)] = cid
      }
    }
    result.entries = rel
  }
  return result
}

async function readStdin () {
  const chunks = []
  for await (const chunk of process.stdin) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

async function main () {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      batch: { type: 'boolean', default: false },
      'cid-version': { type: 'string', default: '0' },
      'raw-leaves': { type: 'boolean' },
      'no-raw-leaves': { type: 'boolean' },
      'chunk-size': { type: 'string' },
      'max-children': { type: 'string' },
      wrap: { type: 'boolean', default: false },
      hidden: { type: 'boolean', default: false },
      'shard-threshold': { type: 'string' },
      'js-shard-compare': { type: 'boolean', default: false },
      entries: { type: 'boolean', default: false }
    }
  })
  if (values.batch) {
    const spec = JSON.parse(await readStdin())
    const results = []
    for (const job of spec.jobs) {
      try {
        results.push(await importPath(job))
      } catch (err) {
        results.push({ error: String(err?.stack ?? err) })
      }
    }
    process.stdout.write(JSON.stringify({ results }) + '\n')
    return
  }
  if (positionals.length !== 1) {
    throw new Error('usage: unixfs_import.mjs PATH [options] | --batch < jobs.json')
  }
  const num = (v) => (v === undefined ? undefined : Number.parseInt(v, 10))
  let rawLeaves
  if (values['raw-leaves']) rawLeaves = true
  if (values['no-raw-leaves']) rawLeaves = false
  const result = await importPath({
    path: positionals[0],
    cidVersion: num(values['cid-version']),
    rawLeaves,
    chunkSize: num(values['chunk-size']),
    maxChildren: num(values['max-children']),
    wrap: values.wrap,
    hidden: values.hidden,
    shardThreshold: num(values['shard-threshold']),
    jsShardCompare: values['js-shard-compare'],
    entries: values.entries
  })
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
