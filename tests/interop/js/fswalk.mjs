// Turn a file or folder on disk into ipfs-unixfs-importer candidates the way
// `ipfs add [-r]` (Kubo) reads it:
// - folder entries are visited in byte order of their names (the importer and
//   dag-pb sort links anyway; this only makes the order deterministic);
// - names starting with "." are skipped unless `hidden` is true;
// - symlinks inside a folder become UnixFS symlinks (not followed);
// - a symlink named as the root is followed, as Kubo does for arguments.
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'

function byteCompare (a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

const STREAM_PIECE = 1024 * 1024

/**
 * A file's content for the importer (whose chunker re-cuts it exactly): small files
 * in one read, big ones streamed in 1 MiB pieces.
 */
export async function * fileContent (path) {
  const { size } = await stat(path)
  if (size <= STREAM_PIECE) {
    yield await readFile(path)
    return
  }
  yield * createReadStream(path, { highWaterMark: STREAM_PIECE })
}

/**
 * @param {string} root - file or folder to import
 * @param {object} [opts]
 * @param {boolean} [opts.hidden=false] - include dotfiles
 * @param {string} [opts.name] - name of the root entry (default: basename of root)
 * @param {boolean} [opts.withPath=true] - give a lone file a path (needed to wrap it)
 * @returns {AsyncGenerator<object>} import candidates
 */
export async function * candidates (root, opts = {}) {
  const hidden = opts.hidden ?? false
  const absRoot = resolve(root)
  const name = opts.name ?? basename(absRoot)
  const st = await stat(absRoot) // follows a root symlink
  if (!st.isDirectory()) {
    if (opts.withPath === false) {
      yield { content: fileContent(absRoot) }
    } else {
      yield { path: name, content: fileContent(absRoot) }
    }
    return
  }
  yield * walkDir(absRoot, name, hidden)
}

async function * walkDir (dir, rel, hidden) {
  yield { path: rel }
  const names = (await readdir(dir)).sort(byteCompare)
  for (const entry of names) {
    if (!hidden && entry.startsWith('.')) {
      continue
    }
    const full = join(dir, entry)
    const childRel = `${rel}/${entry}`
    const lst = await lstat(full)
    if (lst.isSymbolicLink()) {
      yield { path: childRel, link: await readlink(full) }
    } else if (lst.isDirectory()) {
      yield * walkDir(full, childRel, hidden)
    } else if (lst.isFile()) {
      yield { path: childRel, content: fileContent(full) }
    } else {
      throw new Error(`cannot import ${full}: not a file, folder or symlink`)
    }
  }
}
