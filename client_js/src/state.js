// Error codes of the host's built-in state and collab plugins (docs/state.md), for
// `error.code === StateErrorCodes.Conflict` rather than bare numbers. The shapes of their
// params, results and events are declared in state.d.ts.

export const StateErrorCodes = Object.freeze({
  Conflict: 4501,
  PatchFailed: 4502,
  TooLarge: 4503,
  HistoryGone: 4504,
  Unavailable: 4505,
  TooManySubscriptions: 4506,
});

export const CollabErrorCodes = Object.freeze({
  NotAParticipant: 4601,
  Forbidden: 4602,
  Locked: 4603,
  NoSuchSession: 4604,
  NoSuchConflict: 4605,
  SessionExists: 4606,
});

/**
 * Supervisor.subscribe() options for `state.subscribe {doc, since_version?}`: after a restart it
 * is made again from the last version seen (in its reply, a `state.changed` or a `state.reset`
 * of that document), so the new reply carries exactly the changes missed meanwhile;
 * `subscription.close()` sends `state.unsubscribe`. Spread it and add `onResult`:
 * `supervisor.subscribe('state.subscribe', { doc }, { ...stateSubscription, onResult })`.
 */
export const stateSubscription = Object.freeze({
  events: Object.freeze(['state.changed', 'state.reset']),
  resume(params, value) {
    if (value === null || typeof value !== 'object' || value.doc !== params.doc) return undefined;
    const seen = Number.isInteger(value.to) ? value.to : value.version;
    if (!Number.isInteger(seen)) return undefined;
    // A reset (a failed write, a delete) may take the version back: the document is that now.
    if (value.to === undefined || !(params.since_version >= seen)) return { ...params, since_version: seen };
    return undefined;
  },
  close: (result) => ['state.unsubscribe', { subscription: result.subscription }],
});
