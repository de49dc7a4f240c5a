import { InternalError } from '../errors.ts'

/**
 * Ends a switch that handles every member of a union: a call type-checks only where `value` is
 * narrowed to `never`, so a member added to the union without its case is a compile error.
 * A value that gets past the types at run time (a cast, a JavaScript caller, a message from
 * another thread) still throws: `error(value)` where the caller owes a typed error for it,
 * else InternalError.
 */
export function assertNever(value: never, error?: (value: unknown) => Error): never {
  throw error?.(value) ?? new InternalError(`unhandled case ${String(value)}`)
}
