/**
 * The Piscina task handler. Loaded by Node itself (native type stripping), not by vitest or a
 * bundler, so this file and everything it imports must use erasable TypeScript only.
 *
 * Each task answers its typed reply with every buffer moved back (transfer list), or an
 * ErrorReply carrying the HaulError code; it never throws on purpose.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina'
import { cdcCuts } from '../chunking/fastcdc.ts'
import {
  ChunkVerificationError,
  type ErrorCode,
  InternalError,
  InvalidArgumentError,
  isHaulError,
} from '../errors.ts'
import { assertNever } from '../util/never.ts'
import { chunkSha256Into } from './chunk-sha256.ts'
import { compressByPolicy, decompress, owned } from './codecs.ts'
import { cutFiles } from './cut-files.ts'
import type {
  AnyReply,
  CdcReply,
  CdcRequest,
  DecodeReply,
  DecodeRequest,
  EncodeReply,
  EncodeRequest,
  HashReply,
  HashRequest,
  WorkerRequest,
} from './messages.ts'
import { SHA256_BYTES } from './messages.ts'

// Every chunk digest goes through chunkSha256Into: an all-zero chunk (a sparse file's hole) is
// recognised instead of hashed, with the same digest.
function sha256(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(SHA256_BYTES)
  chunkSha256Into(out, 0, data)
  return out
}

function hash(req: HashRequest): [HashReply, ArrayBufferLike[]] {
  const hashes = new Uint8Array(req.bufs.length * SHA256_BYTES)
  req.bufs.forEach((buf, i) => {
    chunkSha256Into(hashes, i * SHA256_BYTES, buf.subarray(0, req.lengths[i]))
  })
  return [{ kind: 'hash', hashes, bufs: req.bufs }, [hashes.buffer, ...req.bufs.map((b) => b.buffer)]]
}

function encode(req: EncodeRequest): [EncodeReply, ArrayBufferLike[]] {
  const plain = req.buf.subarray(0, req.length)
  const hash = req.hash ? sha256(plain) : null
  const { codec, payload } = compressByPolicy(req.policy, plain, req.zstdLevel)
  const transfer: ArrayBufferLike[] = hash === null ? [req.buf.buffer] : [hash.buffer, req.buf.buffer]
  if (codec === 'none') return [{ kind: 'encode', hash, codec, payload: null, buf: req.buf }, transfer]
  // Starts its own buffer (see compress): moved whole rather than copied here.
  const moved = payload.byteOffset === 0 ? payload : owned(payload)
  transfer.push(moved.buffer)
  return [{ kind: 'encode', hash, codec, payload: moved, buf: req.buf }, transfer]
}

function decode(req: DecodeRequest): [DecodeReply, ArrayBufferLike[]] {
  const plain = decompress(req.codec, req.payload, req.rawLength, req.into ?? undefined)
  const digest = sha256(plain)
  let same = digest.length === req.expectedHash.length
  for (let i = 0; same && i < digest.length; i++) same = digest[i] === req.expectedHash[i]
  if (!same) throw new ChunkVerificationError(`chunk of ${req.rawLength} bytes does not match its hash`)
  // Moved as it is when it starts its buffer (the payload, `into`, or the decoder's new buffer):
  // the pool trims the view to rawLength. A copy here would leave its source as garbage in this
  // worker, whose GC seldom runs (dead buffers piled up to ~64 MB per worker).
  const data = plain.byteOffset === 0 ? plain : owned(plain)
  const spare = data.buffer === req.payload.buffer ? null : req.payload
  return [{ kind: 'decode', data, spare }, spare === null ? [data.buffer] : [data.buffer, spare.buffer]]
}

function cdc(req: CdcRequest): [CdcReply, ArrayBufferLike[]] {
  const { lengths, consumed } = cdcCuts(req.buf.subarray(0, req.length), req.params, req.isFinal)
  const hashes = new Uint8Array(req.hash ? lengths.length * SHA256_BYTES : 0)
  let at = 0
  lengths.forEach((len, i) => {
    if (req.hash) chunkSha256Into(hashes, i * SHA256_BYTES, req.buf.subarray(at, at + len))
    at += len
  })
  if (at !== consumed) throw new InternalError(`cdcCuts lengths sum to ${at}, consumed ${consumed}`)
  return [{ kind: 'cdc', lengths, hashes, consumed, buf: req.buf }, [hashes.buffer, req.buf.buffer]]
}

function dispatch(req: WorkerRequest): [AnyReply, ArrayBufferLike[]] {
  switch (req.kind) {
    case 'hash':
      return hash(req)
    case 'encode':
      return encode(req)
    case 'decode':
      return decode(req)
    case 'cdc':
      return cdc(req)
    case 'cut':
      return [cutFiles(req), []]
    default:
      assertNever(
        req,
        (r) => new InvalidArgumentError(`unknown worker task ${(r as { kind: unknown }).kind}`),
      )
  }
}

/**
 * The task handler, a named export (Piscina is told `name: 'handle'`): Piscina loads this
 * file with `require()`, and Node wraps a required ES module that has a default export in
 * a generated facade module, a step that has aborted a worker's process natively
 * (`CreateRequiredModuleFacade`, Node 24). Without a default export there is no facade.
 */
export function handle(req: WorkerRequest): unknown {
  let reply: AnyReply
  let transfer: ArrayBufferLike[] = []
  try {
    ;[reply, transfer] = dispatch(req)
  } catch (err) {
    const code: ErrorCode = isHaulError(err) ? err.code : 'INTERNAL'
    reply = { kind: 'error', code, message: err instanceof Error ? err.message : String(err) }
  }
  // A transfer list must not name one ArrayBuffer twice.
  return move({ [transferableSymbol]: [...new Set(transfer)], [valueSymbol]: reply })
}
