/**
 * One mail template per one-time-code purpose, each rendered as plain text and HTML from the same
 * wording so the two bodies never disagree. Everything interpolated into HTML is escaped.
 */
import type { OtpPurpose } from "../otp/otp.purposes";
import type { Notice } from "./mail.messages";

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

interface Template {
  subject: string;
  /** What the code is for, as one sentence. */
  lead: string;
  /** Said after the code: what to do if the reader did not ask for it. */
  ignore: string;
}

const TEMPLATES: Record<OtpPurpose, Template> = {
  verify_email: {
    subject: "Your Latchkey activation code",
    lead: "Use this code to confirm your email address and activate your account:",
    ignore: "If you did not create an account, you can ignore this email.",
  },
  login: {
    subject: "Your Latchkey sign-in code",
    lead: "Use this code to sign in:",
    ignore: "If you did not try to sign in, you can ignore this email; nobody can sign in without the code.",
  },
  reset_password: {
    subject: "Your Latchkey password reset code",
    lead: "Use this code to choose a new password:",
    ignore: "If you did not ask to reset your password, you can ignore this email; your password has not changed.",
  },
  change_email: {
    subject: "Confirm your new Latchkey email address",
    lead: "Use this code to make this address your account's email address:",
    ignore: "If you did not ask for this, you can ignore this email; nothing changes without the code.",
  },
};

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch] as string);
}

/** "10 minutes", "1 minute": a code's whole lifetime, rounded up. */
function describeLifetime(expiresAtMs: number, issuedAtMs: number): string {
  const minutes = Math.max(1, Math.ceil((expiresAtMs - issuedAtMs) / 60_000));
  return minutes === 1 ? "1 minute" : `${minutes} minutes`;
}

/**
 * Renders the mail carrying `code`: from the code alone (when it was issued and when it expires),
 * never from the time of sending. A retry goes out under the same idempotency key, and a provider
 * refuses a key sent again with another body; the first try may have been delivered with its
 * answer lost. So the mail states the lifetime from issue and the moment it ends, which stay true
 * however long the message waited in the queue.
 */
export function renderOtpMail(input: {
  to: string;
  purpose: OtpPurpose;
  code: string;
  issuedAtMs: number;
  expiresAtMs: number;
}): RenderedMail {
  const t = TEMPLATES[input.purpose];
  const lifetime = describeLifetime(input.expiresAtMs, input.issuedAtMs);
  const expiresIso = new Date(input.expiresAtMs).toISOString();
  const validity = `The code works once, for ${lifetime} from when it was sent: it expires at ${expiresIso}.`;
  const footer = `This email was sent to ${input.to}.`;

  const text = [t.lead, "", `    ${input.code}`, "", validity, t.ignore, "", footer, ""].join("\n");
  const html = `<!doctype html>
<html><body style="font-family:system-ui,sans-serif;color:#111">
<p>${escapeHtml(t.lead)}</p>
<p style="font-size:28px;font-weight:bold;letter-spacing:6px;font-family:monospace">${escapeHtml(input.code)}</p>
<p>${escapeHtml(validity)}</p>
<p>${escapeHtml(t.ignore)}</p>
<p style="color:#666;font-size:12px">${escapeHtml(footer)}</p>
</body></html>
`;
  return { subject: t.subject, text, html };
}

const NOTICES: Record<Notice, { subject: string; lines: (newEmail: string | undefined) => string[] }> = {
  email_change_requested: {
    subject: "Your Latchkey email address is being changed",
    lines: (newEmail) => [
      `Someone signed in to your account asked to change its email address to ${newEmail}.`,
      "Nothing changes until the code we sent to that address is entered; until then this address stays the account's email.",
      "If this wasn't you, change your password now and sign out everywhere: someone knows your password.",
    ],
  },
  email_changed: {
    subject: "Your Latchkey email address was changed",
    lines: (newEmail) => [
      `Your account's email address is now ${newEmail}. This address no longer signs in to it, and every other sign-in has ended.`,
      "If this wasn't you, reply to this email or contact support at once.",
    ],
  },
  account_deleted: {
    subject: "Your Latchkey account was deleted",
    lines: () => [
      "The account of this address was deleted, with its profile, statuses, history and every sign-in, by someone signed in to it who entered its password.",
      "If this wasn't you, someone knew your password: reply to this email or contact support at once, and change that password wherever else you use it.",
    ],
  },
};

/** Renders a security notice (no code): what happened to the account, and what to do if it wasn't you. */
export function renderNoticeMail(input: { to: string; notice: Notice; newEmail?: string }): RenderedMail {
  const t = NOTICES[input.notice];
  const lines = t.lines(input.newEmail);
  const footer = `This email was sent to ${input.to}.`;
  const text = [...lines, "", footer, ""].join("\n");
  const html = `<!doctype html>
<html><body style="font-family:system-ui,sans-serif;color:#111">
${lines.map((line) => `<p>${escapeHtml(line)}</p>`).join("\n")}
<p style="color:#666;font-size:12px">${escapeHtml(footer)}</p>
</body></html>
`;
  return { subject: t.subject, text, html };
}
