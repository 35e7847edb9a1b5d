/**
 * Desktop notifications and the tab title. Permission is asked only when the
 * user says yes: from Settings, or from the offer shown after the first
 * message arrives (never at page load).
 */
const PREF = 'kez-notify';
const ASKED = 'kez-notify-offered';

function perm(): NotificationPermission | 'unsupported' {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
}

function pref(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}
function setPref(key: string, v: string | null): void {
  try {
    if (v === null) localStorage.removeItem(key);
    else localStorage.setItem(key, v);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

export class Notifier {
  permission = $state(perm());
  /** The user wants notifications (they still need the browser's permission). */
  wanted = $state(pref(PREF) === '1');
  /** Show "Turn on notifications?" (after the first message, once). */
  offer = $state(false);
  /** The page's own title (without the unread count). */
  pageTitle = $state('');

  get active(): boolean {
    return this.wanted && this.permission === 'granted';
  }

  async enable(): Promise<void> {
    this.offer = false;
    setPref(ASKED, '1');
    if (this.permission === 'unsupported') return;
    this.permission = this.permission === 'default' ? await Notification.requestPermission() : Notification.permission;
    this.wanted = this.permission === 'granted';
    setPref(PREF, this.wanted ? '1' : null);
  }

  disable(): void {
    this.wanted = false;
    this.offer = false;
    setPref(PREF, null);
    setPref(ASKED, '1');
  }

  /** A message came in: offer notifications once, or show one when the user is not looking at that chat. */
  incoming(title: string, body: string, tag: string, looking: boolean, open: () => void): void {
    this.permission = perm();
    if (!this.active) {
      if (!this.wanted && this.permission !== 'denied' && pref(ASKED) !== '1') this.offer = true;
      return;
    }
    if (looking) return;
    try {
      const n = new Notification(title, { body: body.length > 140 ? body.slice(0, 139) + '…' : body, tag });
      n.onclick = () => {
        window.focus();
        open();
        n.close();
      };
    } catch {
      // some platforms only allow notifications from a service worker; the unread count still shows
    }
  }
}
