/** Signing up, confirming the address, signing in (password or emailed code), signing out, resetting a forgotten password. */

import { z } from "@hono/zod-openapi";
import type { Hono } from "hono";
import { EmailSchema, LoginSchema, PasswordSchema, RegisterSchema } from "../../features/auth/auth.schemas";
import { login, register } from "../../features/auth/auth.service";
import { CodeSchema } from "../../features/otp/otp.schemas";
import { loginWithCode, requestCode, resetPassword, verifyEmailAndSignIn } from "../../features/otp/otp-flows.service";
import { AppError } from "../../lib/errors";
import type { WebEnv } from "../web.env";
import { attempt, formStatus, type Problem, page, parseWith, redirect, text, type WebContext } from "../web.kit";
import { Field, type FieldErrors, Form } from "../web.layout";
import { webPage } from "../web.middleware";
import { isRegistrant, rememberEmail, rememberedEmail, rememberRegistrant, safeNext, signInBrowser, signOutBrowser } from "../web.session";

const anyone = webPage({ access: "any" });
const EmailOnly = z.object({ email: EmailSchema });
const VerifyForm = z.object({ email: EmailSchema, code: CodeSchema });
const RegistrantPassword = z.object({ password: PasswordSchema });
const ResetForm = z.object({ email: EmailSchema, code: CodeSchema, new_password: PasswordSchema, new_password_again: z.string() });

function mismatch(field: string): AppError {
  return new AppError("validation_failed", `${field}: does not match`, {
    errors: [{ path: field, message: "the two passwords do not match" }],
  });
}

// ---- registration -------------------------------------------------------------------------

function registrationPage(
  c: WebContext,
  values: Record<string, string>,
  errors: FieldErrors = {},
  error?: string,
  status?: Problem["status"],
) {
  return page(
    c,
    "Create an account",
    <Form action="/registration" csrf={c.var.csrf} label="Create an account">
      <Field
        name="username"
        label="Username"
        value={values.username}
        errors={errors}
        autocomplete="username"
        required
        hint="3–30 letters, digits, '_', '.' or '-'."
        maxlength={30}
      />
      <Field name="email" label="Email" type="email" value={values.email} errors={errors} autocomplete="email" required />
      <Field
        name="password"
        label="Password"
        type="password"
        errors={errors}
        autocomplete="new-password"
        required
        hint="At least 8 characters; not a common password, and not your email or username."
      />
      <Field name="password_confirm" label="Password again" type="password" errors={errors} autocomplete="new-password" required />
      <button type="submit">Create account</button>
      <p>
        Already have an account? <a href="/login">Sign in</a>
      </p>
    </Form>,
    { status, error },
  );
}

function registrationRoutes(web: Hono<WebEnv>) {
  web.get("/registration", anyone, (c) => (c.var.signedIn ? c.redirect("/settings", 303) : registrationPage(c, {})));
  web.post("/registration", anyone, async (c) => {
    const values = { username: text(c, "username"), email: text(c, "email") };
    const result = await attempt(c, async () => {
      const input = parseWith(RegisterSchema, {
        email: values.email,
        password: text(c, "password"),
        password_confirm: text(c, "password_confirm"),
        ...(values.username.trim() ? { username: values.username } : {}),
      });
      return register(c.var.deps, input);
    });
    if (!result.ok) {
      const p = result.problem;
      return registrationPage(c, values, p.fields, p.sentence, formStatus(p, 409));
    }
    if (result.value.emailVerified) return redirect(c, "/login", "registered");
    rememberEmail(c, result.value.email);
    await rememberRegistrant(c, result.value.email);
    return redirect(c, "/verify", "registered");
  });
}

// ---- email confirmation ------------------------------------------------------------------

/**
 * The activation code proves the mailbox, not who registered. A browser that set or proved the
 * password (the registrant cookie) needs only the code; anywhere else the page also asks for the
 * password chosen at registration, so the owner of an address someone else registered cannot
 * confirm that person's password (pre-registration hijacking). Such an owner is pointed to a
 * sign-in code, which ends it.
 */
async function verifyPage(c: WebContext, email: string, errors: FieldErrors = {}, error?: string, status?: Problem["status"]) {
  const address = EmailSchema.safeParse(email);
  const needsPassword = !(address.success && (await isRegistrant(c, address.data)));
  return page(
    c,
    "Confirm your email",
    <>
      <p>We emailed you a 6-digit code. Enter it here to confirm your address and sign in.</p>
      <Form action="/verify" csrf={c.var.csrf} label="Confirm your email">
        <Field name="email" label="Email" type="email" value={email} errors={errors} autocomplete="email" required />
        <Field
          name="code"
          autofocus={email !== ""}
          label="Code"
          value=""
          errors={errors}
          autocomplete="one-time-code"
          inputmode="numeric"
          required
          maxlength={12}
        />
        {needsPassword && (
          <Field
            name="password"
            label="Password"
            type="password"
            errors={errors}
            autocomplete="current-password"
            required
            hint="The password you chose when you registered."
          />
        )}
        <button type="submit">Confirm</button>
      </Form>
      {needsPassword && (
        <p>
          Did not register this account yourself, or forgot its password? <a href="/login/code">Sign in with an emailed code</a> instead:
          that confirms your address and ends any password someone else chose.
        </p>
      )}
      <Form action="/verify/resend" csrf={c.var.csrf} class="secondary" label="Send a new code">
        <input type="hidden" name="email" value={email} />
        <button type="submit" class="secondary">
          Send a new code
        </button>
      </Form>
    </>,
    { status, error },
  );
}

function verifyRoutes(web: Hono<WebEnv>) {
  web.get("/verify", anyone, (c) => verifyPage(c, rememberedEmail(c)));
  web.post("/verify", anyone, async (c) => {
    const email = text(c, "email");
    const result = await attempt(c, async () => {
      const input = parseWith(VerifyForm, { email, code: text(c, "code") });
      if (await isRegistrant(c, input.email)) return verifyEmailAndSignIn(c.var.deps, input, { registrantBrowser: true });
      const { password } = parseWith(RegistrantPassword, { password: text(c, "password") });
      return verifyEmailAndSignIn(c.var.deps, input, { password });
    });
    if (!result.ok) {
      const { problem } = result;
      return verifyPage(c, email, problem.fields, problem.sentence, formStatus(problem, 401));
    }
    await signInBrowser(c, result.value);
    return redirect(c, "/settings", "verified");
  });
  web.post("/verify/resend", anyone, async (c) => {
    const email = text(c, "email");
    const result = await attempt(c, async () => requestCode(c.var.deps, { ...parseWith(EmailOnly, { email }), purpose: "verify_email" }));
    if (!result.ok) return verifyPage(c, email, result.problem.fields, result.problem.sentence, formStatus(result.problem));
    rememberEmail(c, email.trim());
    return redirect(c, "/verify", "code_sent");
  });
}

// ---- sign-in -----------------------------------------------------------------------------

function loginPage(
  c: WebContext,
  values: { identifier: string; next: string },
  errors: FieldErrors = {},
  error?: string,
  status?: Problem["status"],
) {
  return page(
    c,
    "Sign in",
    <>
      <Form action="/login" csrf={c.var.csrf} label="Sign in">
        <input type="hidden" name="next" value={values.next} />
        <Field name="identifier" label="Email or username" value={values.identifier} errors={errors} autocomplete="username" required />
        <Field name="password" label="Password" type="password" errors={errors} autocomplete="current-password" required />
        <button type="submit">Sign in</button>
      </Form>
      <ul class="links">
        <li>
          <a href="/login/code">Email me a code instead</a>
        </li>
        <li>
          <a href="/password/forgot">Forgot your password?</a>
        </li>
        <li>
          <a href="/registration">Create an account</a>
        </li>
      </ul>
    </>,
    { status, error },
  );
}

function codeLoginPage(
  c: WebContext,
  email: string,
  step: "email" | "code",
  errors: FieldErrors = {},
  error?: string,
  status?: Problem["status"],
) {
  return page(
    c,
    "Sign in with a code",
    step === "email" ? (
      <Form action="/login/code/send" csrf={c.var.csrf} label="Email me a code">
        <Field name="email" label="Email" type="email" value={email} errors={errors} autocomplete="email" required />
        <button type="submit">Email me a code</button>
      </Form>
    ) : (
      <>
        <p>If an account with this email exists, we sent it a 6-digit code.</p>
        <Form action="/login/code" csrf={c.var.csrf} label="Sign in with the code">
          <Field name="email" label="Email" type="email" value={email} errors={errors} autocomplete="email" required />
          <Field name="code" label="Code" errors={errors} autocomplete="one-time-code" inputmode="numeric" required maxlength={12} />
          <button type="submit">Sign in</button>
        </Form>
        <p>
          <a href="/login/code">Use another address or send a new code</a>
        </p>
      </>
    ),
    { status, error },
  );
}

function loginRoutes(web: Hono<WebEnv>) {
  web.get("/login", anyone, (c) => {
    const next = safeNext(c.req.query("next"), "/profilepage");
    if (c.var.signedIn) return c.redirect(next, 303);
    return loginPage(c, { identifier: "", next });
  });
  web.post("/login", anyone, async (c) => {
    const identifier = text(c, "identifier").trim();
    const next = safeNext(text(c, "next"), "/profilepage");
    const result = await attempt(
      c,
      async () => {
        const byEmail = identifier.includes("@");
        const input = parseWith(LoginSchema, { [byEmail ? "email" : "username"]: identifier, password: text(c, "password") });
        return login(c.var.deps, input);
      },
      { email: "identifier", username: "identifier" },
    );
    if (!result.ok) {
      const p = result.problem;
      if (p.code === "email_not_verified") {
        // The right password (only then is the account's state told): this browser may be
        // signed in by the activation code. By username, the address is not known here.
        const address = EmailSchema.safeParse(identifier);
        if (address.success) {
          rememberEmail(c, address.data);
          await rememberRegistrant(c, address.data);
        }
        return redirect(c, "/verify");
      }
      return loginPage(c, { identifier, next }, p.fields, p.sentence, formStatus(p, 401));
    }
    await signInBrowser(c, result.value);
    return redirect(c, next, "signed_in");
  });
  // `?step=code` after a code was sent; the address itself is remembered in a cookie, not the URL.
  web.get("/login/code", anyone, (c) => codeLoginPage(c, rememberedEmail(c), c.req.query("step") === "code" ? "code" : "email"));
  web.post("/login/code/send", anyone, async (c) => {
    const email = text(c, "email");
    const result = await attempt(c, async () => requestCode(c.var.deps, { ...parseWith(EmailOnly, { email }), purpose: "login" }));
    if (!result.ok) return codeLoginPage(c, email, "email", result.problem.fields, result.problem.sentence, formStatus(result.problem));
    rememberEmail(c, email.trim());
    return redirect(c, "/login/code?step=code");
  });
  web.post("/login/code", anyone, async (c) => {
    const email = text(c, "email");
    const result = await attempt(c, async () => loginWithCode(c.var.deps, parseWith(VerifyForm, { email, code: text(c, "code") })));
    if (!result.ok) return codeLoginPage(c, email, "code", result.problem.fields, result.problem.sentence, formStatus(result.problem));
    await signInBrowser(c, result.value);
    return redirect(c, "/profilepage", "signed_in");
  });
}

// ---- sign-out ----------------------------------------------------------------------------

function logoutRoutes(web: Hono<WebEnv>) {
  // GET never signs out (a link or a prefetch must not end a session): it asks.
  web.get("/logout", anyone, (c) =>
    page(
      c,
      "Sign out",
      c.var.signedIn ? (
        <Form action="/logout" csrf={c.var.csrf} label="Sign out">
          <p>Sign out of Latchkey on this browser?</p>
          <button type="submit">Sign out</button>
        </Form>
      ) : (
        <p>
          You are not signed in. <a href="/login">Sign in</a>
        </p>
      ),
    ),
  );
  web.post("/logout", webPage({ access: "any", lenientWhenSignedOut: true }), async (c) => {
    await signOutBrowser(c);
    return redirect(c, "/login", "signed_out");
  });
}

// ---- forgotten password ------------------------------------------------------------------

function forgotPage(c: WebContext, email: string, errors: FieldErrors = {}, error?: string, status?: Problem["status"]) {
  return page(
    c,
    "Forgot your password?",
    <Form action="/password/forgot" csrf={c.var.csrf} label="Email me a reset code">
      <p>We will email a code to reset your password.</p>
      <Field name="email" label="Email" type="email" value={email} errors={errors} autocomplete="email" required />
      <button type="submit">Email me a code</button>
    </Form>,
    { status, error },
  );
}

function resetPage(c: WebContext, email: string, errors: FieldErrors = {}, error?: string, status?: Problem["status"]) {
  return page(
    c,
    "Choose a new password",
    <>
      <p>If an account with this email exists, we sent it a 6-digit code.</p>
      <Form action="/password/reset" csrf={c.var.csrf} label="Choose a new password">
        <Field name="email" label="Email" type="email" value={email} errors={errors} autocomplete="email" required />
        <Field name="code" label="Code" errors={errors} autocomplete="one-time-code" inputmode="numeric" required maxlength={12} />
        <Field
          name="new_password"
          label="New password"
          type="password"
          errors={errors}
          autocomplete="new-password"
          required
          hint="At least 8 characters; not a common password, and not your email or username."
        />
        <Field name="new_password_again" label="New password again" type="password" errors={errors} autocomplete="new-password" required />
        <button type="submit">Set new password</button>
      </Form>
      <p>
        <a href="/password/forgot">Send a new code</a>
      </p>
    </>,
    { status, error },
  );
}

function passwordRoutes(web: Hono<WebEnv>) {
  web.get("/password/forgot", anyone, (c) => forgotPage(c, ""));
  web.post("/password/forgot", anyone, async (c) => {
    const email = text(c, "email");
    const result = await attempt(c, async () => requestCode(c.var.deps, { ...parseWith(EmailOnly, { email }), purpose: "reset_password" }));
    if (!result.ok) return forgotPage(c, email, result.problem.fields, result.problem.sentence, formStatus(result.problem));
    rememberEmail(c, email.trim());
    return redirect(c, "/password/reset");
  });
  web.get("/password/reset", anyone, (c) => resetPage(c, rememberedEmail(c)));
  web.post("/password/reset", anyone, async (c) => {
    const email = text(c, "email");
    const result = await attempt(c, async () => {
      const input = parseWith(ResetForm, {
        email,
        code: text(c, "code"),
        new_password: text(c, "new_password"),
        new_password_again: text(c, "new_password_again"),
      });
      if (input.new_password !== input.new_password_again) throw mismatch("new_password_again");
      return resetPassword(c.var.deps, input);
    });
    if (!result.ok) return resetPage(c, email, result.problem.fields, result.problem.sentence, formStatus(result.problem));
    // The reset ended every sign-in of its account. This browser's may have been another account's:
    // ended too, rather than left live unseen once its cookies are gone.
    await signOutBrowser(c);
    return redirect(c, "/login", "password_reset");
  });
}

export function accountPages(web: Hono<WebEnv>) {
  registrationRoutes(web);
  verifyRoutes(web);
  loginRoutes(web);
  logoutRoutes(web);
  passwordRoutes(web);
}
