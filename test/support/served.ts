import type { FrameStream } from '../../src/net/stream-io.ts'
import { chunkIndexOf } from './sender.ts'

/**
 * A stream wrapper for `startSender({ wrap })` that counts the chunk payload
 * bytes a sender writes (with codec 'none', the chunk bytes themselves): what
 * every receiver downloaded, including chunks it had to fetch again.
 */
export function servedBytes() {
  const counter = { bytes: 0, chunks: 0 }
  /** The index of every chunk written, in order. */
  const indices: number[] = []
  const wrap = (stream: FrameStream): FrameStream =>
    new Proxy(stream, {
      get(target, prop, receiver) {
        if (prop === 'write') {
          return (parts: readonly Uint8Array[], o?: { signal?: AbortSignal }) => {
            const index = chunkIndexOf(parts)
            if (index !== undefined) {
              counter.bytes += parts[1]!.length
              counter.chunks++
              indices.push(index)
            }
            return target.write(parts, o)
          }
        }
        const v = Reflect.get(target, prop, receiver)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
  return {
    wrap,
    get bytes() {
      return counter.bytes
    },
    get chunks() {
      return counter.chunks
    },
    indices,
  }
}
