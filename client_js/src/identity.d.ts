// Types for the participant ids the host derives from `$meta.caller`.

/**
 * The participant id the host derives from a declared caller (`$meta.caller`): a string or
 * integer as it is, else `participant`, else `window:<window>`, else `id` of an object;
 * `null` when it declares none the host would use.
 */
export declare function participantOf(declared: unknown): string | null;
