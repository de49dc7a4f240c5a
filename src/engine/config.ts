/**
 * An engine's configuration: the option types (./config/types.ts), the one table of every
 * option's default, range and meaning (./config/table.ts), and the resolver that applies it
 * (./config/resolve.ts).
 */
import { resolveAll, engineDefaults as tableDefaults } from './config/resolve.ts'
import type { Leaf } from './config/schema.ts'
import type { TableConfig } from './config/table.ts'
import type { EngineConfig, EngineOptions } from './config/types.ts'

export type { EngineConfig, EngineNetworkConfig, EngineOptions, EngineThread } from './config/types.ts'

/**
 * Fills defaults and checks every option: an omitted or `undefined` field takes its default,
 * an unknown key or a bad value is a ConfigInvalidError naming its path. Never changes `opts`.
 */
export function resolveEngineConfig(opts: EngineOptions = {}): EngineConfig {
  return resolveAll(opts)
}

/** What an engine created without options runs with. */
export const engineDefaults: EngineConfig = tableDefaults

/** Every level made required, leaves without `undefined`: to compare option sets by shape. */
type Full<T> = {
  [K in keyof T]-?: NonNullable<T[K]> extends Leaf ? NonNullable<T[K]> : Full<NonNullable<T[K]>>
}
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type Assert<T extends true> = T
/**
 * Compile-time: the table names exactly the options EngineConfig has, with the same value
 * types (so an enum the table lists is the whole union its type allows).
 */
export type TableMatchesConfig = Assert<Same<Full<TableConfig>, Full<EngineConfig>>>
