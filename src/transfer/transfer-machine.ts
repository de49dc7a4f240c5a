import { assign, fromPromise, setup } from 'xstate'
import { asHaulError, type HaulError, RetriesExhaustedError } from '../errors.ts'
import { backoffDelay, isTransient, type RetryInfo, type RetryOptions } from './retry.ts'

/**
 * One transfer's life, as an XState v5 machine.
 *
 *   resolving ──► fetching ──► finalizing ──► done
 *       ▲  │          │             │
 *       │  └──────────┴─ transient ─┴──► retrying ──(backoff)──┐
 *       └──────────────────────────────────────────────────────┘
 *   any other error, or attempts spent ──► failed
 *   (any non-final state) ── cancel ──► cancelled
 *
 * The work of each state is one step of the `TransferJob` given as input, run
 * as a named promise actor; the machine itself holds no I/O, so it is tested
 * on its own with a stand-in job. XState aborts an invoked actor's `signal`
 * when its state is left; the engine passes that signal all the way down
 * (streams, budget waits, worker tasks), which is how `cancel` stops real work.
 *
 * Retrying counts failures in a row without progress: `job.progressMark()`
 * grows as the peer serves (verified chunks, chunk bytes new for their request arriving), and a
 * failure after progress starts the count again at 1. So a transfer survives any number of cuts while it moves,
 * and gives up only when `retry.maxAttempts` attempts in a row got nowhere.
 */

export type TransferStatus =
  | 'resolving'
  | 'fetching'
  | 'finalizing'
  | 'retrying'
  | 'done'
  | 'failed'
  | 'cancelled'

export interface TransferOutput {
  readonly status: 'done' | 'failed' | 'cancelled'
  readonly error?: HaulError
}

/** The work behind each state. Every step must honour `signal`: it aborts when the state is left. */
export interface TransferJob {
  /** Connect (again, after a retry), fetch and check the header, open local state on the first run. */
  resolve(signal: AbortSignal): Promise<void>
  fetchChunks(signal: AbortSignal): Promise<void>
  finalize(signal: AbortSignal): Promise<void>
  readonly retry: RetryOptions
  /** Grows whenever the transfer makes progress (chunks verified and written, new chunk bytes arriving). */
  progressMark(): number
  /** Whether a new connection may cure `error`. @default isTransient(error) */
  canRetry?(error: HaulError): boolean
  /** Failures in a row allowed after `error` (e.g. fewer before first contact). @default retry.maxAttempts */
  attemptLimit?(error: HaulError): number
  /** The error to fail with once attempts are spent; undefined: RetriesExhaustedError, caused by `last`. */
  exhausted?(last: HaulError, attempts: number): HaulError | undefined
  /** Whether anything verified is kept beside the destination for a resume. @default true */
  keepsAnything?(): boolean
  /** Called on entering `retrying`: drop the broken session, tell the user. */
  onRetry?(info: RetryInfo): void
}

interface Context {
  job: TransferJob
  status: TransferOutput['status'] | undefined
  error: HaulError | undefined
  /** Failures in a row without progress. */
  attempt: number
  /** progressMark() at the last failure. */
  mark: number
  delayMs: number
}

export type TransferEvent = { type: 'cancel' }

type Step = 'resolve' | 'fetchChunks' | 'finalize'
const step = (name: Step) => fromPromise<void, TransferJob>(({ input, signal }) => input[name](signal))

/** The attempt number this failure would be: 1 after progress, else one more than before. */
function nextAttempt(context: Context): number {
  return context.job.progressMark() > context.mark ? 1 : context.attempt + 1
}

function retryable(context: Context, error: HaulError): boolean {
  return context.job.canRetry?.(error) ?? isTransient(error)
}

const errorOf = (event: unknown): HaulError => asHaulError((event as { error: unknown }).error)

const machineSetup = setup({
  types: {
    context: {} as Context,
    events: {} as TransferEvent,
    input: {} as TransferJob,
    output: {} as TransferOutput,
  },
  actors: {
    resolve: step('resolve'),
    fetchChunks: step('fetchChunks'),
    finalize: step('finalize'),
  },
  guards: {
    canRetry: ({ context, event }) =>
      retryable(context, errorOf(event)) &&
      nextAttempt(context) < (context.job.attemptLimit?.(errorOf(event)) ?? context.job.retry.maxAttempts),
    retriesSpent: ({ context, event }) => retryable(context, errorOf(event)),
  },
  delays: {
    backoff: ({ context }) => context.delayMs,
  },
  actions: {
    fail: assign({ error: ({ event }) => errorOf(event) }),
    giveUp: assign({
      error: ({ context, event }) => {
        const last = errorOf(event)
        const n = nextAttempt(context)
        const custom = context.job.exhausted?.(last, n)
        if (custom !== undefined) return custom
        const kept =
          context.job.keepsAnything?.() === false
            ? 'Nothing was verified yet: try again later, or ask the sender whether it still serves it'
            : 'What was verified is kept beside the destination: fetch the same ticket, or a new one for the same content, to the same destination to resume'
        return new RetriesExhaustedError(
          `gave up after ${n} attempt${n === 1 ? '' : 's'} in a row without progress; last: [${last.code}] ${last.message}. ${kept}`,
          { cause: last },
        )
      },
    }),
    noteFailure: assign(({ context, event }) => {
      const attempt = nextAttempt(context)
      return {
        attempt,
        mark: context.job.progressMark(),
        delayMs: backoffDelay(attempt, context.job.retry),
        error: errorOf(event),
      }
    }),
    notifyRetry: ({ context }) => {
      context.job.onRetry?.({
        attempt: context.attempt,
        maxAttempts: context.job.attemptLimit?.(context.error!) ?? context.job.retry.maxAttempts,
        delayMs: context.delayMs,
        error: context.error!,
      })
    },
  },
})

/** Where a failed connect or fetch goes: back off and retry, give up with RETRIES_EXHAUSTED, or fail now. */
const retryOrFail = [
  { guard: 'canRetry', target: 'retrying', actions: 'noteFailure' },
  { guard: 'retriesSpent', target: 'failed', actions: 'giveUp' },
  { target: 'failed', actions: 'fail' },
] as const

export const transferMachine = machineSetup.createMachine({
  id: 'transfer',
  context: ({ input }) => ({
    job: input,
    status: undefined,
    error: undefined,
    attempt: 0,
    mark: -1,
    delayMs: 0,
  }),
  initial: 'resolving',
  on: {
    cancel: '.cancelled',
  },
  states: {
    resolving: {
      description:
        'Connect to the peer, fetch and check the descriptor header; the first time, open <dest>.part and its journal.',
      invoke: {
        src: 'resolve',
        input: ({ context }) => context.job,
        onDone: 'fetching',
        onError: retryOrFail,
      },
    },
    fetching: {
      description:
        'Pull the chunks the journal lacks in windows; each is verified against its leaf, written, then journaled.',
      invoke: {
        src: 'fetchChunks',
        input: ({ context }) => context.job,
        onDone: 'finalizing',
        onError: retryOrFail,
      },
    },
    finalizing: {
      description:
        'Every chunk verified and written: fsync, rename <dest>.part to <dest>, drop the journal. Short and atomic, so a cancel now is ignored: the file is complete.',
      on: { cancel: { actions: [] } },
      invoke: {
        src: 'finalize',
        input: ({ context }) => context.job,
        onDone: 'done',
        onError: { target: 'failed', actions: 'fail' },
      },
    },
    retrying: {
      description: 'A transient failure: wait a jittered, exponentially growing delay, then reconnect.',
      entry: 'notifyRetry',
      after: { backoff: 'resolving' },
    },
    done: {
      type: 'final',
      description: 'The file is whole and verified at its destination.',
      entry: assign({ status: 'done' as const, error: undefined }),
    },
    failed: {
      type: 'final',
      description: 'Stopped with a typed error; <dest>.part and its journal are kept for a later resume.',
      entry: assign({ status: 'failed' as const }),
    },
    cancelled: {
      type: 'final',
      description: 'Cancelled by the caller; in-flight work was aborted.',
      entry: assign({ status: 'cancelled' as const }),
    },
  },
  output: ({ context }) => {
    const status = context.status ?? 'failed'
    return context.error === undefined || status !== 'failed' ? { status } : { status, error: context.error }
  },
})
