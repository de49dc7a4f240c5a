/**
 * comlink's adapter from a Node MessagePort or Worker to the Endpoint it speaks through. Its
 * CommonJS module is the function itself, which TypeScript types as a module whose `default` it
 * is: the cast says what Node's import gives.
 */
import adapter from 'comlink/dist/umd/node-adapter.js'

export const nodeEndpoint = adapter as unknown as typeof adapter.default
