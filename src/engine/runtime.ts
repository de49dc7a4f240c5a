import { ConfigInvalidError } from '../errors.ts'

/** The oldest Node.js haul runs on (ArrayBuffer.prototype.transfer, among others). */
export const MIN_NODE_MAJOR = 22

/** Refuses an older Node.js than haul needs with a typed error that says what to do. */
export function assertRuntime(version: string): void {
  const major = Number(version.split('.')[0])
  if (major >= MIN_NODE_MAJOR) return
  throw new ConfigInvalidError(
    `haul needs Node.js ${MIN_NODE_MAJOR} or newer; this is Node.js ${version}: run it under a newer Node (the package pins Node 24 as a devDependency: npx node <your script>)`,
  )
}
