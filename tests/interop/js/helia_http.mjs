#!/usr/bin/env node
// Helia over HTTP only, for interop tests: its trustless-gateway block broker and its
// delegated routing (/routing/v1) client, with no libp2p and no bitswap at all, so
// every byte it gets came over HTTP.
//
//   node helia_http.mjs '<request JSON>'      (prints one JSON answer on stdout)
//
// Requests:
//   {"op": "fetch", "gateways": [URL], "routers": [URL], "items": [{"cid", "dest"}],
//    "timeout_ms": N}
//       A light Helia (memory blockstore) with @helia/trustless-gateway-client's block
//       broker (allowInsecure and allowLocal on: our gateway is http://127.0.0.1).
//       Gateways come from "gateways" (@helia/fallback-router: asked for every block)
//       and from "routers" (@helia/delegated-routing-client: the providers a
//       /routing/v1 server names, used when they offer an /http address; at least one
//       is required, see fetchOverHttp). Each item's
//       UnixFS file or folder is written under "dest".
//       -> {"items": [{"cid", "type"}], "blocks": [CID in the blockstore]}
//   {"op": "routing", "router": URL, "providers": [CID], "peers": [peer id],
//    "timeout_ms": N}
//       @helia/delegated-routing-v1-http-api-client's getProviders and getPeers.
//       -> {"providers": {CID: [record]}, "peers": {peer id: [record]}} where a record
//          is {"ID", "Addrs", "Protocols"} as strings.
// Failures exit 1 with the error on stderr.
import './polyfill.mjs'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { once } from 'node:events'
import { join } from 'node:path'
import { delegatedHTTPRouter } from '@helia/delegated-routing-client'
import { delegatedRoutingV1HttpApiClient } from '@helia/delegated-routing-v1-http-api-client'
import { fallbackRouter } from '@helia/fallback-router'
import { trustlessGatewayBlockBroker } from '@helia/trustless-gateway-client'
import { unixfs } from '@helia/unixfs'
import { peerIdFromString } from '@libp2p/peer-id'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'

async function writeTree (fs, cid, dest, signal) {
  const stat = await fs.stat(cid, { signal })
  if (stat.type === 'directory') {
    await mkdir(dest, { recursive: true })
    for await (const entry of fs.ls(cid, { signal })) {
      await writeTree(fs, entry.cid, join(dest, entry.name), signal)
    }
    return stat.type
  }
  const out = createWriteStream(dest)
  try {
    for await (const chunk of fs.cat(cid, { signal })) {
      if (!out.write(chunk)) await once(out, 'drain')
    }
  } finally {
    out.end()
    await once(out, 'close')
  }
  return stat.type
}

async function fetchOverHttp (req, signal) {
  if ((req.routers ?? []).length === 0) {
    // Helia 7.1's routing waits forever when it has only fallback routers: the end of
    // its (empty) set of ordinary routers is never signalled. So ask at least one.
    throw new Error('give at least one delegated router beside any gateways')
  }
  const blockstore = new MemoryBlockstore()
  const helia = createHeliaLight({ blockstore, datastore: new MemoryDatastore() })
  for (const url of req.routers ?? []) {
    helia.addRouter(delegatedHTTPRouter({ url, cacheTTL: 0 }))
  }
  if ((req.gateways ?? []).length > 0) {
    helia.addRouter(fallbackRouter({ gateways: req.gateways, shuffle: false }))
  }
  helia.addBlockBroker(trustlessGatewayBlockBroker({ allowInsecure: true, allowLocal: true }))
  await helia.start()
  try {
    const fs = unixfs(helia)
    const items = []
    for (const item of req.items) {
      const type = await writeTree(fs, CID.parse(item.cid), item.dest, signal)
      items.push({ cid: item.cid, type })
    }
    const blocks = []
    for await (const { cid } of blockstore.getAll()) blocks.push(cid.toString())
    return { items, blocks }
  } finally {
    await helia.stop()
  }
}

function plain (record) {
  return {
    ID: record.ID.toString(),
    Addrs: record.Addrs.map((ma) => ma.toString()),
    Protocols: [...record.Protocols]
  }
}

async function readRouting (req, signal) {
  // The client is a libp2p-style component; a light Helia lends it its logger.
  const { logger } = createHeliaLight({
    blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore()
  })
  const client = delegatedRoutingV1HttpApiClient({
    url: req.router, cacheTTL: 0, timeout: req.timeout_ms ?? 30000
  })({ logger })
  await client.start()
  try {
    const providers = {}
    for (const text of req.providers ?? []) {
      providers[text] = []
      for await (const record of client.getProviders(CID.parse(text), { signal })) {
        providers[text].push(plain(record))
      }
    }
    const peers = {}
    for (const text of req.peers ?? []) {
      peers[text] = []
      const key = peerIdFromString(text).toCID()
      for await (const record of client.getPeers(key, { signal })) {
        peers[text].push(plain(record))
      }
    }
    return { providers, peers }
  } finally {
    await client.stop()
  }
}

const OPS = { fetch: fetchOverHttp, routing: readRouting }

async function main () {
  const req = JSON.parse(process.argv[2] ?? '{}')
  const op = OPS[req.op]
  if (op == null) throw new Error(`unknown op ${req.op}`)
  const signal = AbortSignal.timeout(req.timeout_ms ?? 30000)
  const answer = await op(req, signal)
  // Exit only once the answer is written: stdout to a pipe is asynchronous in Node.
  await new Promise((resolve) => process.stdout.write(JSON.stringify(answer) + '\n', resolve))
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`${err?.name ?? 'Error'}: ${err?.message ?? err}\n${err?.stack ?? ''}\n`)
  process.exit(1)
})
