import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  ContentPreparingError,
  PeerUnreachableError,
  TimeoutError,
  TooManyRequestsError,
} from '../../src/errors.ts'
import { FetchRetry } from '../../src/fetch/fetch-retry.ts'
import { ProviderSet } from '../../src/fetch/provider-set.ts'
import { MAX_RECENT_PEERS, RecentPeers } from '../../src/fetch/recent-peers.ts'
import type { RetryOptions } from '../../src/transfer/retry.ts'

const retry: RetryOptions = {
  maxAttempts: 10,
  maxAttemptsFirstContact: 3,
  baseDelayMs: 100,
  maxDelayMs: 30_000,
  maxStallMs: 300_000,
}

describe('FetchRetry: a provider indexing the file again (CONTENT_PREPARING)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('is asked again whatever the attempts until retry.maxStallMs pass without progress, then counted', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const rule = new FetchRetry(retry, new ProviderSet(), {})
    const preparing = new ContentPreparingError('indexing')
    expect(rule.canRetry(preparing)).toBe(true)
    expect(rule.attemptLimit(preparing)).toBe(Number.POSITIVE_INFINITY)
    // Another transient refusal from a peer is counted as always.
    expect(rule.attemptLimit(new TooManyRequestsError('busy'))).toBe(10)
    vi.advanceTimersByTime(300_001)
    expect(rule.attemptLimit(preparing)).toBe(10)
  })
})

describe('FetchRetry: a provider reached only through a relay with no circuit free', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('is asked again whatever the attempts until retry.maxStallMs pass without progress, then counted', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const rule = new FetchRetry(retry, new ProviderSet(), {})
    const full = new TooManyRequestsError('no circuit free', { relayFull: true })
    expect(rule.canRetry(full)).toBe(true)
    expect(rule.attemptLimit(full)).toBe(Number.POSITIVE_INFINITY)
    vi.advanceTimersByTime(299_000)
    expect(rule.attemptLimit(full)).toBe(Number.POSITIVE_INFINITY)
    vi.advanceTimersByTime(1_001)
    expect(rule.attemptLimit(full)).toBe(10)
  })
})

describe('FetchRetry: a provider this fetch never reached, which the engine heard from (RecentPeers)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })
  const providers = (): ProviderSet => {
    const set = new ProviderSet()
    set.add({ peerId: 'sender', addrs: [] })
    return set
  }
  const down = new PeerUnreachableError('connect ECONNREFUSED')

  it('is in an outage until retry.maxStallMs after it was last heard from, then absent as at first contact', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const recentPeers = new RecentPeers()
    const rule = new FetchRetry(retry, providers(), { recentPeers })
    expect(rule.attemptLimit(down)).toBe(3)
    recentPeers.heard('another peer')
    expect(rule.attemptLimit(down)).toBe(3)
    recentPeers.heard('sender')
    expect(rule.attemptLimit(down)).toBe(Number.POSITIVE_INFINITY)
    expect(rule.attemptLimit(new TimeoutError('no answer'))).toBe(Number.POSITIVE_INFINITY)
    vi.advanceTimersByTime(300_001)
    expect(rule.attemptLimit(down)).toBe(3)
    expect(rule.exhausted(down)).toBe(down)
  })

  it('remembers the MAX_RECENT_PEERS heard from last', () => {
    const recentPeers = new RecentPeers()
    recentPeers.heard('sender')
    for (let i = 0; i < MAX_RECENT_PEERS; i++) recentPeers.heard(`peer ${i}`)
    expect(recentPeers.size).toBe(MAX_RECENT_PEERS)
    expect(recentPeers.heardWithin('sender', 300_000)).toBe(false)
    expect(recentPeers.heardWithin('peer 0', 300_000)).toBe(true)
  })
})
