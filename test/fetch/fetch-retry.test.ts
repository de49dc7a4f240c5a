import { afterEach, describe, expect, it, vi } from 'vitest'
import { ContentPreparingError, TooManyRequestsError } from '../../src/errors.ts'
import { FetchRetry } from '../../src/fetch/fetch-retry.ts'
import { ProviderSet } from '../../src/fetch/provider-set.ts'
import type { RetryOptions } from '../../src/transfer/retry.ts'

describe('FetchRetry: a provider indexing the file again (CONTENT_PREPARING)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('is asked again whatever the attempts until retry.maxStallMs pass without progress, then counted', () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const retry: RetryOptions = {
      maxAttempts: 10,
      maxAttemptsFirstContact: 3,
      baseDelayMs: 100,
      maxDelayMs: 30_000,
      maxStallMs: 300_000,
    }
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
