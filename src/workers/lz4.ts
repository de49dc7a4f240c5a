/**
 * A direct binding to the lz4-wasm code shipped in `lz4-wasm-nodejs` (lz4_flex, block format, the
 * plain length prepended as u32 little-endian).
 *
 * Why not the package's own JS glue: its `decompress` returns `.slice()` of wasm memory, a fresh
 * ArrayBuffer per chunk; decompressing straight into a recycled buffer measured ~1.7x faster on
 * 1 MiB text chunks (bench/codec.bench.ts). Its glue also parks every error string in a
 * module-private heap slot that is never freed when called from outside. The ABI below is the
 * wasm-bindgen one of lz4-wasm-nodejs 0.9.x; `bind()` checks the exports it relies on.
 *
 * Callers must validate the size header before `decompressInto`: lz4_flex allocates whatever the
 * header claims, and wasm memory never shrinks (a 0x7fffffff header grew it to 2 GiB in a test).
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

// The project's lib settings carry no WebAssembly typings; this is the slice used here.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: unknown }
}
const { Module, Instance } = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

interface Lz4Exports {
  readonly memory: { readonly buffer: ArrayBuffer }
  compress(retptr: number, ptr: number, len: number): void
  decompress(retptr: number, ptr: number, len: number): void
  __wbindgen_add_to_stack_pointer(delta: number): number
  __wbindgen_malloc(size: number): number
  __wbindgen_free(ptr: number, size: number): void
}

/** The u32 little-endian plain length in front of every lz4-wasm block. */
export const LZ4_HEADER_BYTES = 4

/** Largest valid lz4 block for `n` plain bytes (LZ4_COMPRESSBOUND) plus the size header. */
export function lz4Bound(n: number): number {
  return LZ4_HEADER_BYTES + n + Math.floor(n / 255) + 16
}

let lastError: string | undefined
let wasm: Lz4Exports | undefined

function bind(): Lz4Exports {
  if (wasm !== undefined) return wasm
  const require = createRequire(import.meta.url)
  const bytes = readFileSync(require.resolve('lz4-wasm-nodejs/lz4_wasm_nodejs_bg.wasm'))
  const decoder = new TextDecoder('utf-8')
  const instance = new Instance(new Module(bytes), {
    __wbindgen_placeholder__: {
      // The only import: the wasm builds its error message as a JS string and returns a handle.
      __wbindgen_string_new(ptr: number, len: number): number {
        lastError = decoder.decode(new Uint8Array(ex.memory.buffer, ptr, len))
        return 0
      },
    },
  })
  const ex = instance.exports as unknown as Lz4Exports
  for (const name of [
    'compress',
    'decompress',
    '__wbindgen_add_to_stack_pointer',
    '__wbindgen_malloc',
    '__wbindgen_free',
  ] as const) {
    if (typeof ex[name] !== 'function') throw new Error(`lz4-wasm ABI changed: missing export ${name}`)
  }
  wasm = ex
  return ex
}

/**
 * Runs one wasm call on `input` and hands the output (still in wasm memory) to `take`, which must
 * copy it out before the output is freed.
 */
function call<T>(fn: 'compress' | 'decompress', input: Uint8Array, take: (out: Uint8Array) => T): T {
  const w = bind()
  const retptr = w.__wbindgen_add_to_stack_pointer(-16)
  try {
    const ptr = w.__wbindgen_malloc(input.length)
    new Uint8Array(w.memory.buffer, ptr, input.length).set(input)
    lastError = undefined
    // The wasm takes ownership of the input allocation and frees it.
    w[fn](retptr, ptr, input.length)
    const ret = new Int32Array(w.memory.buffer, retptr, 4)
    const outPtr = ret[0]!
    const outLen = ret[1]!
    if (fn === 'decompress' && ret[3] !== 0) {
      throw new Error(lastError ?? 'lz4 decompression failed')
    }
    try {
      return take(new Uint8Array(w.memory.buffer, outPtr, outLen))
    } finally {
      w.__wbindgen_free(outPtr, outLen)
    }
  } finally {
    w.__wbindgen_add_to_stack_pointer(16)
  }
}

/** lz4 block with the size header; the result owns its ArrayBuffer. */
export function lz4Compress(plain: Uint8Array): Uint8Array {
  return call('compress', plain, (out) => out.slice())
}

/** Length of {@link lz4Compress}'s result, without copying it out of wasm memory. */
export function lz4CompressedLength(plain: Uint8Array): number {
  return call('compress', plain, (out) => out.length)
}

/**
 * Decompresses into `out` and returns the number of bytes written. Throws a plain Error on corrupt
 * input or when the output would not fit in `out`; the header must already have been checked.
 */
export function lz4DecompressInto(payload: Uint8Array, out: Uint8Array): number {
  return call('decompress', payload, (plain) => {
    if (plain.length > out.length) throw new Error(`lz4 output ${plain.length} exceeds ${out.length}`)
    out.set(plain)
    return plain.length
  })
}

/** Current size of this thread's lz4 wasm memory (it only grows): for tests and metrics. */
export function lz4MemoryBytes(): number {
  return bind().memory.buffer.byteLength
}
