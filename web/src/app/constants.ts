/**
 * UI constants. The CLI command shown for downloads lives here only.
 *
 * Syntax as in cli/src/main.rs (`kez-chat fetch @tudisco 3q2-7w`): a handle
 * (`@local` on the home server, `local@domain` elsewhere) and the entry id.
 * Entry ids are base64url and may start with "-", which a command-line parser
 * would take for an option, so such an id is preceded by "--".
 * (Lead: confirm this stays the final CLI syntax.)
 */
export function cliFetchCommand(handleMention: string, entryId: string): string {
  return `kez-chat fetch ${handleMention} ${entryId.startsWith('-') ? '-- ' : ''}${entryId}`;
}

/** Inbox retention W (§6 step 6) when /v1/config does not report inbox_max_age_ms. */
export const DEFAULT_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/** How many rejected-envelope notices to keep. */
export const MAX_NOTICES = 50;
