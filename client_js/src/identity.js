// Who is calling, as the host sees it: the participant id it derives from a call's `$caller`
// (or, without one, `$meta.caller`); bridge/identity.py has the same rules. Events meant for
// some participants carry their ids in `params.$meta.to`; the Electron helper uses this to
// route them to the right windows.

const MAX_PARTICIPANT_CHARS = 256;

/**
 * The participant id of a declared caller: a string or number as it is, else `participant`,
 * else `window:<window>`, else `id` of an object. `null` when it declares nothing the host
 * would use (the host then counts the call as its connection's own). Ids over 256
 * characters are digested by the host; they get `null` here, so no event is routed by them.
 */
export function participantOf(declared) {
  const text = declaredId(declared);
  return text === null || text.length > MAX_PARTICIPANT_CHARS ? null : text;
}

/** True when the host derives a participant of its own from `declared`, not the connection's. */
export function declaresParticipant(declared) {
  return declaredId(declared) !== null;
}

function declaredId(declared) {
  let value = declared;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    if (isId(value.participant)) value = value.participant;
    else if (isId(value.window)) value = `window:${value.window}`;
    else if (isId(value.id)) value = value.id;
  }
  return isId(value) && value !== '' ? String(value) : null;
}

function isId(value) {
  return typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value));
}
