/** The fault proxy moved into the product (the load-test harness uses it); tests import it from here as before. */
export * from '../../src/loadtest/fault-proxy.ts'
