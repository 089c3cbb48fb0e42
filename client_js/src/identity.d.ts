// Types for the participant ids the host derives from a call's `$caller` (or `$meta.caller`).

/**
 * The participant id the host derives from a declared caller (`$caller`, or `$meta.caller`):
 * a string or integer as it is, else `participant`, else `window:<window>`, else `id` of an
 * object; `null` when it declares none the host would use, or one it would digest (over 256
 * characters).
 */
export declare function participantOf(declared: unknown): string | null;

/** True when the host derives a participant of its own from `declared`, not the connection's. */
export declare function declaresParticipant(declared: unknown): boolean;
