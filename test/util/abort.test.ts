import { describe, expect, it } from 'vitest'
import { AbortedError } from '../../src/errors.ts'
import { abortedBy, raceAbort, throwIfAborted } from '../../src/util/abort.ts'

describe('raceAbort', () => {
  it('rejects on abort while the task settles later, unobserved', async () => {
    const ac = new AbortController()
    let fail!: (e: Error) => void
    const task = new Promise<number>((_, reject) => {
      fail = reject
    })
    const raced = raceAbort(task, ac.signal)
    ac.abort(new Error('why'))
    await expect(raced).rejects.toMatchObject({ name: 'AbortedError', cause: { message: 'why' } })
    fail(new Error('late failure nobody awaits'))
    await expect(raceAbort(Promise.resolve(7), new AbortController().signal)).resolves.toBe(7)
  })
})

describe('abortedBy / throwIfAborted', () => {
  it('give an AbortedError whose cause is the abort reason', () => {
    const ac = new AbortController()
    expect(() => throwIfAborted(ac.signal)).not.toThrow()
    expect(() => throwIfAborted(undefined)).not.toThrow()
    ac.abort('stop')
    expect(abortedBy(ac.signal)).toMatchObject({ name: 'AbortedError', cause: 'stop' })
    expect(() => throwIfAborted(ac.signal)).toThrow(AbortedError)
  })
})
