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
