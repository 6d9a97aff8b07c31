import type { AppEnv } from "../env";
import type { FlashKey } from "./web.messages";

/** The app's context plus what the web pages add: whether someone is signed in, the page's CSRF token, a flash message. */
export interface WebEnv {
  Bindings: Env;
  Variables: AppEnv["Variables"] & {
    signedIn: boolean;
    csrf: string;
    flash: FlashKey | null;
    /** The submitted form of a POST, parsed once by the CSRF check. */
    form: Record<string, string | File>;
  };
}
