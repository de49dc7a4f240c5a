/** Errors across the engine thread's boundary (src/engine/thread/wire.ts), without a thread: what structured clone gives the host. */
import { describe, expect, it } from 'vitest'
import { decodeDeep, decodeError, encodeDeep, encodeError } from '../../src/engine/thread/wire.ts'
import {
  ChunkVerificationError,
  errorClassOf,
  type HaulError,
  RetriesExhaustedError,
  WIRE_CODES,
} from '../../src/errors.ts'

/** Encoded, cloned as a port would, decoded. */
const across = (err: unknown) => decodeError(structuredClone(encodeError(err)))

describe('errors across the engine thread', () => {
  it('every code comes back in its own class, with its message and stack', () => {
    for (const code of Object.keys(WIRE_CODES)) {
      const Class = errorClassOf(code)
      const original = new Class('x')
      const back = across(original) as HaulError
      expect(back).toBeInstanceOf(Class)
      expect(back.name).toBe(original.name)
      expect(back.code).toBe(code)
      expect(back.message).toBe('x')
      expect(back.stack).toBe(original.stack)
    }
  })

  it('keeps the cause (rebuilt the same way) and own fields that clone', () => {
    const cause = new ChunkVerificationError('chunk 7 does not match its leaf')
    const err = Object.assign(new RetriesExhaustedError('gave up after 10 attempts', { cause }), {
      attempts: 10,
      dropped: () => {},
    })
    const back = across(err) as RetriesExhaustedError & { attempts?: number; dropped?: unknown }
    expect(back).toBeInstanceOf(RetriesExhaustedError)
    expect(back.cause).toBeInstanceOf(ChunkVerificationError)
    expect((back.cause as HaulError).code).toBe('CHUNK_VERIFICATION_FAILED')
    expect(back.attempts).toBe(10)
    expect(back.dropped).toBeUndefined()
  })

  it('a plain Error keeps its name; a thrown non-Error is itself; an unknown code is INTERNAL', () => {
    const t = across(new TypeError('bad')) as Error
    expect(t.name).toBe('TypeError')
    expect(t.message).toBe('bad')
    expect(across('just text')).toBe('just text')
    const future = {
      ...(encodeError(new RetriesExhaustedError('later')) as object),
      code: 'FROM_A_NEWER_VERSION',
    }
    expect((decodeError(future) as HaulError).code).toBe('INTERNAL')
  })

  it("a callback's arguments: errors inside plain objects cross too (RetryInfo.error)", () => {
    const info = { attempt: 2, delayMs: 500, error: new ChunkVerificationError('bad chunk') }
    const back = decodeDeep(structuredClone(encodeDeep(info))) as typeof info
    expect(back.attempt).toBe(2)
    expect(back.error).toBeInstanceOf(ChunkVerificationError)
  })
})
