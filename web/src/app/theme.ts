/** Light or dark: follows the system unless the user picked one in Settings (kept in localStorage, not secret). */
export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'kez-theme';

export function themeChoice(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

const media = () => (typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null);

export function applyTheme(choice = themeChoice()): void {
  const dark = choice === 'dark' || (choice === 'system' && !!media()?.matches);
  document.documentElement.classList.toggle('dark', dark);
  document.documentElement.style.colorScheme = dark ? 'dark' : 'light';
}

export function setTheme(choice: ThemeChoice): void {
  try {
    if (choice === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
  } catch {
    // storage disabled: applies to this page only
  }
  applyTheme(choice);
}

/** Applies the theme now and again whenever the system setting changes. */
export function initTheme(): void {
  applyTheme();
  media()?.addEventListener('change', () => applyTheme());
}
