/** Seeded randomness, so a failing fault run can be replayed with its seed. */
export { mulberry32 as seededRandom } from '../../src/util/random.ts'
