import { app, type IdentityView } from './state.svelte';

/** A handle lookup as a form shows it: the verified view, busy while it runs, or the error. */
export class HandleLookup {
  view = $state.raw<IdentityView | null>(null);
  busy = $state(false);
  error = $state<unknown>(null);

  async run(input: string): Promise<void> {
    this.error = null;
    this.view = null;
    this.busy = true;
    try {
      this.view = await app.lookup(input);
    } catch (err) {
      this.error = err;
    } finally {
      this.busy = false;
    }
  }

  reset(): void {
    this.view = null;
    this.error = null;
  }
}
