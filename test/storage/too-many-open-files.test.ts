import { describe, expect, it } from 'vitest'
import { asHaulError, TooManyOpenFilesError } from '../../src/errors.ts'
import { fsError } from '../../src/storage/fs-errors.ts'

describe('running out of file descriptors', () => {
  it('EMFILE and ENFILE are TOO_MANY_OPEN_FILES, saying what to do, wherever they are typed', () => {
    const emfile = Object.assign(new Error("EMFILE: too many open files, open '/x/f.part.lock'"), {
      code: 'EMFILE',
    })
    for (const err of [fsError(emfile, '/x/f.part.lock'), asHaulError(emfile)]) {
      expect(err).toBeInstanceOf(TooManyOpenFilesError)
      expect(err.code).toBe('TOO_MANY_OPEN_FILES')
      expect(err.message).toContain('ulimit -n')
      expect(err.message).toContain('server.maxOpenFiles')
    }
    const enfile = fsError(Object.assign(new Error('ENFILE'), { code: 'ENFILE' }), '/x/f')
    expect(enfile.code).toBe('TOO_MANY_OPEN_FILES')
  })
})
