import { denseSpec } from './dense.js';
import { multiQuerySpec } from './multi-query.js';
import type { VariantSpec } from './types.js';

/** Specs by catalog id. Every catalog entry needs one. */
export const specs: Record<string, VariantSpec> = {
  dense: denseSpec,
  'multi-query': multiQuerySpec,
};
