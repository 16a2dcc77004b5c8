/**
 * The one "disallowed score" of every composite.
 *
 * @module
 */

/**
 * The additive score bias of a pair that is not allowed: exp of it (minus any real row max)
 * underflows to exactly 0, so a disallowed pair never takes softmax mass. It must stay above
 * −1e20: tfjs-backend-webgl's max reduction starts from −1e20, so a row whose every entry is
 * below that reads back as −1e20 and would pass the "has an allowed key" test
 * (`max > DISALLOWED_SCORE / 10`). Real scores are many orders of magnitude smaller than 1e8.
 */
export const DISALLOWED_SCORE = -1e9;
