// System programs the real-part tests start (chromium, Xvfb, redis-server). `partMissing(binary)`
// is false when the program is on PATH, else the reason to pass as node:test's `skip`; under
// CI=true a missing program throws instead, so CI cannot pass by skipping.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const INSTALL = 'sudo bash scripts/system-packages.sh';

/** The absolute path of `binary` on PATH, or null. */
export function which(binary) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return null;
}

/** false if `binary` is installed, else a skip reason (throws under CI=true). */
export function partMissing(binary) {
  if (which(binary)) return false;
  const reason = `${binary} is not installed (install it with: ${INSTALL})`;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}
