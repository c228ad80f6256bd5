#!/usr/bin/env node
// A real Helia (helia 7 / libp2p 3) node for interop tests, driven over JSON lines.
//
//   node helia_peer.mjs '{"blockstore": DIR|null, "dht": false}'
//
// The node listens on /ip4/127.0.0.1/tcp/0 only, with noise, yamux, identify and
// bitswap; no bootstrap, no mDNS, no relay, no HTTP routers or gateways. With
// "dht": true it also runs ping and two Kademlia DHT servers that accept private
// and loopback addresses: /ipfs/kad/1.0.0 (Amino) and /ipfs/lan/kad/1.0.0 (the
// LAN DHT, which is the one Kubo uses with peers on 127.0.0.1). Blocks live in blockstore-fs under DIR, or in
// memory when DIR is null.
//
// When ready it prints {"event": "ready", "peer_id": ..., "addrs": [...]} (addrs
// end with /p2p/<peer id>). Then each stdin line is a request
// {"id": N, "op": OP, ...} answered (possibly out of order) by
// {"id": N, "ok": true, "result": ...} or {"id": N, "ok": false, "error": ...}.
// Requests that touch the network take "timeout_ms" (default 30000) and fail
// with a TimeoutError/AbortError message when it passes. Ops:
//   ping                                    -> "pong"
//   id                                      -> {peer_id, addrs}
//   add {path, cidVersion, rawLeaves, chunkSize, maxChildren, wrap, hidden,
//        shardThreshold}                    -> root CID (Kubo semantics, see importopts.mjs)
//   add_bytes {data (base64), ...same}      -> CID
//   block_put {data (base64), codec ("raw"|"dag-pb"|"dag-cbor"|"dag-json"|number),
//              version (default 1)}         -> CID (sha2-256)
//   block_get {cid, timeout_ms, offline}    -> base64 bytes (from peers unless offline)
//   has {cid}                               -> bool (local blockstore only)
//   dial {addr, timeout_ms}                 -> remote peer id
//   hangup {peer_id}                        -> null
//   peers                                   -> [peer id]
//   connections                             -> [{peer_id, addr}]
//   cat {cid, dest, timeout_ms}             -> bytes written (file content to dest)
//   get {cid, dest, timeout_ms}             -> "file"|"directory"|"raw"... (tree to dest)
//   pin {cid, timeout_ms}                   -> [CIDs pinned] (fetches the whole DAG)
//   unpin {cid}                             -> null
//   pins                                    -> [CID]
//   provide {cid, timeout_ms}               -> null (needs dht)
//   find_providers {cid, timeout_ms, limit} -> [{peer_id, addrs}] (needs dht)
//   stop                                    -> null, then the process exits
// The process also exits when stdin closes.
import './polyfill.mjs'
import { mkdir, symlink } from 'node:fs/promises'
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromCID } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { FsBlockstore } from 'blockstore-fs'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { candidates } from './fswalk.mjs'
import { kuboImporterOptions } from './importopts.mjs'

const CODECS = { raw: 0x55, 'dag-pb': 0x70, 'dag-cbor': 0x71, 'dag-json': 0x0129 }

function emit (msg) {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

function signalFor (req) {
  req._signal = AbortSignal.timeout(req.timeout_ms ?? 30000)
  return req._signal
}

function describe (err, req) {
  const text = `${err?.name ?? 'Error'}: ${err?.message ?? err}`
  if (req._signal?.aborted) {
    return `TimeoutError: no result within timeout_ms=${req.timeout_ms ?? 30000} (${text})`
  }
  return text
}

async function collect (bytes) {
  // interface-blockstore 7 returns a (possibly async) generator of chunks
  if (bytes instanceof Uint8Array) return bytes
  const parts = []
  for await (const part of bytes) parts.push(part)
  return Buffer.concat(parts)
}

async function main () {
  const params = JSON.parse(process.argv[2] ?? '{}')
  const started = performance.now()
  const services = { identify: identify() }
  if (params.dht) {
    services.ping = ping()
    // Amino's protocol (what py-libp2p and a public Kubo speak) ...
    services.dht = kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      clientMode: false,
      peerInfoMapper: passthroughMapper
    })
    // ... and Kubo's LAN DHT, the only one Kubo uses for peers on loopback/private
    // addresses (its WAN DHT filters them out of its routing table).
    services.lanDht = kadDHT({
      protocol: '/ipfs/lan/kad/1.0.0',
      clientMode: false,
      peerInfoMapper: passthroughMapper
    })
  }
  let blockstore
  if (params.blockstore) {
    blockstore = new FsBlockstore(params.blockstore)
    await blockstore.open()
  } else {
    blockstore = new MemoryBlockstore()
  }
  const helia = withBitswap(withLibp2pLight(createHeliaLight({
    blockstore,
    datastore: new MemoryDatastore()
  }), {
    addresses: { listen: params.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services
  }))
  await helia.start()
  const libp2p = helia.libp2p
  const fs = unixfs(helia)
  const addrs = () => libp2p.getMultiaddrs().map((ma) => ma.toString())

  async function writeTree (cid, dest, signal) {
    const stat = await fs.stat(cid, { signal })
    if (stat.type === 'directory') {
      await mkdir(dest, { recursive: true })
      for await (const entry of fs.ls(cid, { signal })) {
        await writeTree(entry.cid, join(dest, entry.name), signal)
      }
    } else if (stat.type === 'symlink') {
      const { exporter } = await import('ipfs-unixfs-exporter')
      const node = await exporter(cid, helia.blockstore, { signal })
      const target = Buffer.from(await collect(node.content({ signal }))).toString('utf8')
      await symlink(target, dest)
    } else {
      await catTo(cid, dest, signal)
    }
    return stat.type
  }

  async function catTo (cid, dest, signal) {
    const out = createWriteStream(dest)
    let written = 0
    try {
      for await (const chunk of fs.cat(cid, { signal })) {
        written += chunk.byteLength
        if (!out.write(chunk)) await once(out, 'drain')
      }
    } finally {
      out.end()
      await once(out, 'close')
    }
    return written
  }

  const handlers = {
    ping: async () => 'pong',
    id: async () => ({ peer_id: libp2p.peerId.toString(), addrs: addrs() }),
    add: async (req) => {
      let root
      const opts = kuboImporterOptions(req)
      const source = candidates(req.path, { hidden: req.hidden ?? false, withPath: true })
      for await (const entry of fs.addAll(source, opts)) root = entry.cid
      if (root == null) throw new Error(`nothing imported from ${req.path}`)
      return root.toString()
    },
    add_bytes: async (req) => {
      const opts = kuboImporterOptions(req)
      return (await fs.addBytes(Buffer.from(req.data, 'base64'), opts)).toString()
    },
    block_put: async (req) => {
      const bytes = Buffer.from(req.data, 'base64')
      const code = typeof req.codec === 'number' ? req.codec : CODECS[req.codec ?? 'raw']
      if (code == null) throw new Error(`unknown codec ${req.codec}`)
      const version = req.version ?? 1
      if (version === 0 && code !== CODECS['dag-pb']) throw new Error('CIDv0 is dag-pb only')
      const digest = await sha256.digest(bytes)
      const cid = version === 0 ? CID.createV0(digest) : CID.createV1(code, digest)
      await helia.blockstore.put(cid, bytes)
      return cid.toString()
    },
    block_get: async (req) => {
      const bytes = await collect(await helia.blockstore.get(CID.parse(req.cid), {
        signal: signalFor(req), offline: req.offline ?? false
      }))
      return Buffer.from(bytes).toString('base64')
    },
    has: async (req) => helia.blockstore.has(CID.parse(req.cid)),
    dial: async (req) => {
      const conn = await libp2p.dial(multiaddr(req.addr), { signal: signalFor(req) })
      return conn.remotePeer.toString()
    },
    hangup: async (req) => {
      const peer = libp2p.getPeers().find((p) => p.toString() === req.peer_id)
      if (peer != null) await libp2p.hangUp(peer)
      return null
    },
    peers: async () => libp2p.getPeers().map((p) => p.toString()),
    connections: async () => libp2p.getConnections().map((c) => ({
      peer_id: c.remotePeer.toString(), addr: c.remoteAddr.toString()
    })),
    cat: async (req) => catTo(CID.parse(req.cid), req.dest, signalFor(req)),
    get: async (req) => writeTree(CID.parse(req.cid), req.dest, signalFor(req)),
    pin: async (req) => {
      const pinned = []
      for await (const cid of helia.pins.add(CID.parse(req.cid), { signal: signalFor(req) })) {
        pinned.push(cid.toString())
      }
      return pinned
    },
    unpin: async (req) => {
      for await (const _ of helia.pins.rm(CID.parse(req.cid))) { /* drain */ }
      return null
    },
    pins: async () => {
      const out = []
      for await (const pin of helia.pins.ls()) out.push(pin.cid.toString())
      return out
    },
    provide: async (req) => {
      await helia.routing.provide(CID.parse(req.cid), { signal: signalFor(req) })
      return null
    },
    find_providers: async (req) => {
      const out = []
      const limit = req.limit ?? 1
      for await (const prov of helia.routing.findProviders(CID.parse(req.cid), {
        signal: signalFor(req)
      })) {
        // helia's routing reports a provider's id as a libp2p-key CID or as a PeerId
        const asCid = CID.asCID(prov.id)
        const id = asCid != null ? peerIdFromCID(asCid) : prov.id
        out.push({ peer_id: id.toString(), addrs: prov.multiaddrs.map(String) })
        if (out.length >= limit) break
      }
      return out
    }
  }

  let stopping = false
  async function stop () {
    if (stopping) return
    stopping = true
    const timer = setTimeout(() => process.exit(0), 5000)
    timer.unref()
    try {
      await helia.stop()
      if (params.blockstore) await blockstore.close()
    } finally {
      process.exit(0)
    }
  }

  emit({
    event: 'ready',
    peer_id: libp2p.peerId.toString(),
    addrs: addrs(),
    timings: { start: (performance.now() - started) / 1000 }
  })

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    let req
    try {
      req = JSON.parse(line)
    } catch (err) {
      emit({ id: null, ok: false, error: `bad request: ${err}` })
      return
    }
    if (req.op === 'stop') {
      emit({ id: req.id, ok: true, result: null })
      stop()
      return
    }
    const handler = handlers[req.op]
    if (handler == null) {
      emit({ id: req.id, ok: false, error: `unknown op ${req.op}` })
      return
    }
    handler(req).then(
      (result) => emit({ id: req.id, ok: true, result: result ?? null }),
      (err) => emit({ id: req.id, ok: false, error: describe(err, req) })
    )
  })
  rl.on('close', () => { stop() })
}

main().catch((err) => {
  emit({ event: 'failed', error: String(err?.stack ?? err) })
  process.exit(1)
})
