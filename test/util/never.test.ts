import { describe, expect, it } from 'vitest'
import { CodecUnsupportedError, InternalError } from '../../src/errors.ts'
import { assertNever } from '../../src/util/never.ts'

describe('assertNever', () => {
  it('throws the error made for a value that got past the types, else InternalError', () => {
    const stray = 'brotli' as never
    expect(() => assertNever(stray, (v) => new CodecUnsupportedError(`unknown codec ${String(v)}`))).toThrow(
      CodecUnsupportedError,
    )
    expect(() => assertNever(stray)).toThrow(InternalError)
  })
})
