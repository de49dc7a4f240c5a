import { expect } from 'vitest'
import { HaulError } from '../../src/errors.ts'

/** The HaulError `p` rejects with; fails the test if it resolves or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<HaulError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(HaulError)
  return err as HaulError
}
