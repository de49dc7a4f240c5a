import { describe, expect, it } from 'vitest'
import { AbortedError } from '../../src/errors.ts'
import { Slots } from '../../src/util/slots.ts'
import { raceAbort } from '../../src/workers/slots.ts'

describe('Slots', () => {
  it('hands slots over in FIFO order and never exceeds the limit', async () => {
    const slots = new Slots(2)
    const order: number[] = []
    await slots.acquire()
    await slots.acquire()
    const waits = [1, 2, 3].map((i) => slots.acquire().then(() => order.push(i)))
    expect(slots.active).toBe(2)
    expect(slots.waiting).toBe(3)
    slots.release()
    slots.release()
    await Promise.resolve()
    expect(order).toEqual([1, 2])
    expect(slots.active).toBe(2)
    slots.release()
    await Promise.all(waits)
    expect(order).toEqual([1, 2, 3])
    slots.release()
    slots.release()
    expect(slots.active).toBe(0)
  })

  it('an aborted waiter leaves the queue and does not take a slot', async () => {
    const slots = new Slots(1)
    await slots.acquire()
    const ac = new AbortController()
    const waiting = slots.acquire({ signal: ac.signal })
    const next = slots.acquire()
    ac.abort('stop')
    await expect(waiting).rejects.toBeInstanceOf(AbortedError)
    expect(slots.waiting).toBe(1)
    slots.release()
    await next
    expect(slots.active).toBe(1)
    await expect(slots.acquire({ signal: ac.signal })).rejects.toBeInstanceOf(AbortedError)
  })

  it('rejectWaiters empties the queue', async () => {
    const slots = new Slots(0)
    const w = slots.acquire()
    slots.rejectWaiters(new AbortedError('closing'))
    await expect(w).rejects.toThrow('closing')
    expect(slots.waiting).toBe(0)
  })
})

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
