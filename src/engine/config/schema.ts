/**
 * What an entry of the option table (./table.ts) says about one option: its kind and range,
 * its default and the line the README shows. resolve.ts checks values against it and docs.ts
 * renders it, so every option follows the same rules whatever its group.
 *
 * Neither this module nor the table imports a module that reads its defaults through
 * resolve.ts, nor the option types of src/engine/config/types.ts (which name those modules'
 * types): either would be an import loop. src/engine/config.ts ties the table to those types.
 */
import type { ChunkingParams } from '../../types.ts'

/** Largest delay Node's timers accept (2^31 − 1 ms); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647

/** How a number is shown in docs and read from them. */
export type Unit = 'bytes' | 'ms' | 'count' | 'bytes/s' | 'weight'

export type OptionKind =
  | 'int'
  | 'number'
  | 'bool'
  | 'enum'
  | 'multiaddrs'
  | 'path'
  | 'hostport'
  | 'chunking'
  | 'codecs'

/**
 * A default that follows other options: called with the config whose plain defaults and given
 * values are in (computed defaults are not), its parameter type naming what it reads.
 */
export type ComputedDefault<T> = (c: never) => T

export interface OptionSpec<T = unknown> {
  readonly kind: OptionKind
  /** What the option bounds or does: the README's "meaning" column. */
  readonly doc: string
  /** `undefined` for an option that is off or unlimited unless given. */
  readonly default: T | ComputedDefault<T>
  /** How docs show the default when a plain rendering of the value would not say it. */
  readonly defaultDoc?: string
  readonly unit?: Unit
  /** int: smallest value; number: values must exceed it. */
  readonly min?: number
  /** int: largest value. */
  readonly max?: number
  /** int: 0 is also accepted (it turns the feature off). */
  readonly orZero?: boolean
  /** number: Infinity is accepted (no limit). */
  readonly infinite?: boolean
  /** enum: the values accepted. */
  readonly values?: readonly string[]
}

/** What the table holds a spec for; every other object is a group. */
export type Leaf = number | boolean | string | readonly string[] | ChunkingParams

/** The resolved value type of each option of a table, by group. */
export type ConfigOf<T> = {
  -readonly [K in keyof T]: T[K] extends OptionSpec<infer V> ? V : ConfigOf<T[K]>
}

/** A cross-field rule over config `C`: `check` returns what is wrong, or undefined. */
export interface CrossRule<C> {
  /** The options it reads; a group resolved alone (resolveOption) runs the rules inside it. */
  readonly paths: readonly string[]
  readonly doc: string
  readonly check: (c: C) => string | undefined
}

export function isSpec(node: unknown): node is OptionSpec {
  return typeof node === 'object' && node !== null && typeof (node as OptionSpec).kind === 'string'
}

/** An option of a kind without a builder of its own, typed by its value. */
export const option = <T>(o: OptionSpec<T>): OptionSpec<T> => o

type Fields<T> = Omit<OptionSpec<T>, 'kind' | 'unit'>
type IntFields<T> = Fields<T> & { readonly min: number }

export const bytes = (o: IntFields<number>): OptionSpec<number> => ({
  kind: 'int',
  unit: 'bytes',
  ...o,
})
export const count = (o: IntFields<number>): OptionSpec<number> => ({
  kind: 'int',
  unit: 'count',
  ...o,
})
/** A duration in ms: at most what a Node timer can wait. */
export const ms = (o: IntFields<number>): OptionSpec<number> => ({
  kind: 'int',
  unit: 'ms',
  max: MAX_TIMER_MS,
  ...o,
})
/** A rate in bytes per second, unlimited unless given (Infinity: unlimited too). */
export const rate = (doc: string): OptionSpec<number | undefined> => ({
  kind: 'number',
  unit: 'bytes/s',
  min: 0,
  infinite: true,
  default: undefined,
  defaultDoc: 'unlimited',
  doc,
})
export const weight = (o: Fields<number>): OptionSpec<number> => ({
  kind: 'number',
  unit: 'weight',
  min: 0,
  ...o,
})
export const flag = (o: Fields<boolean>): OptionSpec<boolean> => ({ kind: 'bool', ...o })
/** `values` names every accepted value once (a Record, so the compiler finds one left out of `V`). */
export const oneOf = <V extends string>(values: Record<V, true>, o: Fields<NoInfer<V>>): OptionSpec<V> => ({
  kind: 'enum',
  values: Object.keys(values),
  ...o,
})
