/**
 * A minimal RFC 5322 / RFC 2045–2049 message builder for the `send_email` binding, which takes a
 * raw MIME message. Only what Latchkey's mails need: one text and one HTML alternative
 * (multipart/alternative, RFC 2046 §5.1.4), both UTF-8 in base64 so no line ever exceeds the
 * 998-octet limit and no body text can be mistaken for a boundary.
 */
import { randomId } from "../../lib/crypto";

export interface MimeInput {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  date: Date;
  /** The right-hand side of the Message-ID; the sender's domain. */
  messageIdDomain: string;
}

const encoder = new TextEncoder();
const CRLF = "\r\n";

function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** base64 wrapped at 76 characters per line (RFC 2045 §6.8). */
function base64Lines(text: string): string {
  return (base64Utf8(text).match(/.{1,76}/g) ?? []).join(CRLF);
}

/** Refuses CR/LF in a header value: a newline there would let the value inject headers. */
function headerValue(name: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new Error(`mail header ${name} contains a line break`);
  return value;
}

/** An unstructured header (Subject) as an RFC 2047 encoded-word when it is not plain ASCII. */
function encodeWord(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${base64Utf8(value)}?=`;
}

/** The bare address of `Name <addr@host>` or `addr@host`. */
export function addressOf(mailbox: string): string {
  const match = /<([^<>\s]+)>\s*$/.exec(mailbox);
  return (match ? (match[1] as string) : mailbox).trim();
}

/** Builds the raw message, lines ending in CRLF as SMTP requires. */
export function buildMimeMessage(input: MimeInput): string {
  const boundary = `latchkey-${randomId()}`;
  const headers = [
    `From: ${headerValue("From", input.from)}`,
    `To: ${headerValue("To", input.to)}`,
    `Subject: ${encodeWord(headerValue("Subject", input.subject))}`,
    `Date: ${input.date.toUTCString()}`,
    `Message-ID: <${randomId()}@${headerValue("Message-ID", input.messageIdDomain)}>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
  ];
  const part = (type: string, body: string) =>
    [`--${boundary}`, `Content-Type: ${type}; charset=utf-8`, "Content-Transfer-Encoding: base64", "", base64Lines(body)].join(CRLF);
  return [...headers, "", part("text/plain", input.text), part("text/html", input.html), `--${boundary}--`, ""].join(CRLF);
}
