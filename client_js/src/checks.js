// Argument checks shared by the client and the supervisor: one wording for every caller.

/** setTimeout fires at once for delays past 2**31 - 1 ms, so longer ones are refused. */
export const MAX_TIMEOUT = 2 ** 31 - 1;

export function checkMethod(method) {
  if (typeof method !== 'string' || method === '') throw new TypeError('method must be a non-empty string');
}

/** JSON-RPC 2.0: params, when present, is an object (by name) or an array (by position). */
export function checkParams(params) {
  if (params !== undefined && (params === null || typeof params !== 'object')) {
    throw new TypeError('params must be an object, an array, or undefined');
  }
}

/** A timeout in ms, or undefined for none (undefined, null and Infinity all mean none). */
export function checkTimeout(timeout) {
  if (timeout === undefined || timeout === null || timeout === Infinity) return undefined;
  if (typeof timeout !== 'number' || !(timeout >= 0) || timeout > MAX_TIMEOUT) {
    throw new TypeError(`timeout must be a number of milliseconds from 0 to ${MAX_TIMEOUT}`);
  }
  return timeout;
}
