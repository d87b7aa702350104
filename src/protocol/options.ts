/**
 * The numeric option check every component's constructor uses: one rule per option, and one ERR_INVALID_OPTION
 * that names the option, the rule and the value given. Pure.
 */
import { ErrorCode, KonnectivityError } from './errors.js';

/** What a numeric option must be; it must always be a finite number. `min` and `max` are inclusive. */
export interface NumberRule {
  /** Whole numbers only. */
  integer?: boolean;
  min?: number;
  /** Exclusive lower bound: `{ above: 0 }` is "positive". */
  above?: number;
  max?: number;
}

/**
 * Return `value` when it meets `rule`; otherwise throw ERR_INVALID_OPTION, e.g.
 * `dialTimeoutMs must be a number > 0, got -1`. Give `value ?? default` for an optional option.
 */
export function checkNumber(name: string, value: number, rule: NumberRule): number {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!rule.integer || Number.isInteger(value)) &&
    (rule.min === undefined || value >= rule.min) &&
    (rule.above === undefined || value > rule.above) &&
    (rule.max === undefined || value <= rule.max);
  if (!ok) throw new KonnectivityError(ErrorCode.INVALID_OPTION, `${name} must be ${describe(rule)}, got ${String(value)}`);
  return value;
}

function describe(rule: NumberRule): string {
  const kind = rule.integer ? 'an integer' : 'a number';
  if (rule.min !== undefined && rule.max !== undefined) return `${kind} in [${rule.min}, ${rule.max}]`;
  const bounds: string[] = [];
  if (rule.above !== undefined) bounds.push(`> ${rule.above}`);
  if (rule.min !== undefined) bounds.push(`>= ${rule.min}`);
  if (rule.max !== undefined) bounds.push(`<= ${rule.max}`);
  return bounds.length === 0 ? kind : `${kind} ${bounds.join(' and ')}`;
}
