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

/** How many rejected-envelope notices to keep. */
export const MAX_NOTICES = 50;
