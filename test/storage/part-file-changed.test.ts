import { existsSync } from 'node:fs'
import { truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PartFile } from '../../src/storage/part-file.ts'
import { failure } from '../support/errors.ts'
import { tempDir } from '../support/files.ts'

const SIZE = 3 * 1024 * 1024

/** Haul keeps `<dest>.part` at the file's size from open to commit: another size is another writer's. */
describe('a part file whose size something else changed', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-part-changed-'))
  })
  afterAll(async () => cleanup())

  it.each([
    ['truncated', 1024 * 1024],
    ['extended', SIZE + 1],
  ])('%s during the fetch: not sealed as a clean stop, and never committed as the file', async (_, size) => {
    const dest = join(dir, `${size}.bin`)
    const part = await PartFile.open(dest, SIZE)
    try {
      await part.write(0, new Uint8Array(SIZE).fill(7))
      expect(await part.sealStamp()).toBeDefined()
      await truncate(`${dest}.part`, size)
      expect(await part.sealStamp()).toBeUndefined()
      const err = await failure(part.commit())
      expect(err.code).toBe('DESTINATION_INVALID')
      expect(err.message).toContain(`is ${size} bytes, not the ${SIZE} haul keeps it at`)
      expect(existsSync(dest)).toBe(false)
    } finally {
      await part.close()
    }
  })
})
