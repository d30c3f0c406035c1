/**
 * The few pages a person sees around a sign-in: where to type an email or organization identifier,
 * what went wrong (with the reference an admin finds in the log), and the self-submitting form of
 * the SAML POST binding. Plain HTML, every interpolated value escaped, no external resources.
 */
import { randomBytes } from 'node:crypto';
import type { Response } from 'express';

const escape = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
main{max-width:26rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;font-weight:600;margin:0 0 .25rem}
input{box-sizing:border-box;width:100%;font:inherit;padding:.5rem;border:1px solid #8a94a6;border-radius:.25rem}
button{margin-top:1rem;font:inherit;padding:.5rem 1rem;border:0;border-radius:.25rem;background:#1f5fbf;color:#fff;cursor:pointer}
:focus-visible{outline:3px solid #f0a000;outline-offset:2px}.error{color:#a61b1b}.hint{color:#4a5568;font-size:.9rem}
code{background:#eef0f3;padding:0 .25rem;border-radius:.2rem}`;

function send(res: Response, status: number, title: string, body: string, scriptNonce?: string): void {
  res
    .status(status)
    .set({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; ${scriptNonce ? `script-src 'nonce-${scriptNonce}'; ` : ''}form-action *; frame-ancestors 'none'; base-uri 'none'`,
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
    })
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
        `<title>${escape(title)} · Portico</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`,
    );
}

/** Where a person starts: an email (routed by its verified domain) or an organization identifier. */
export function loginPage(res: Response, options: { status?: number; error?: string; value?: string } = {}): void {
  const error = options.error ? `<p class="error" id="login-error" role="alert">${escape(options.error)}</p>` : '';
  send(
    res,
    options.status ?? 200,
    'Sign in with SSO',
    `<h1>Sign in with your organization</h1>
<form method="get" action="/sso/login" novalidate>
<label for="login">Work email or organization identifier</label>
<input id="login" name="login" autocomplete="username" required value="${escape(options.value ?? '')}"${error ? ' aria-invalid="true" aria-describedby="login-error"' : ''} autofocus>
${error}<button type="submit">Continue</button>
</form>
<p class="hint">You will continue at your organization’s identity provider.</p>`,
  );
}

/** A refused or failed sign-in: what happened, what to do, and the reference in the log. */
export function errorPage(res: Response, status: number, message: string, reference: string): void {
  send(
    res,
    status,
    'Sign-in failed',
    `<h1>Sign-in failed</h1><p>${escape(message)}</p>
<p class="hint">If this keeps happening, give your administrator this reference: <code>${escape(reference)}</code></p>
<p><a href="/sso/login">Start again</a></p>`,
  );
}

/** The SAML HTTP-POST binding: a form the browser submits to the IdP at once (or by its button without script). */
export function autoPostPage(res: Response, action: string, fields: Record<string, string>): void {
  const nonce = randomBytes(16).toString('base64');
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escape(name)}" value="${escape(value)}">`)
    .join('');
  send(
    res,
    200,
    'Continue to your identity provider',
    `<h1>Continue to your identity provider</h1><form id="saml" method="post" action="${escape(action)}">${inputs}<button type="submit">Continue</button></form>
<script nonce="${nonce}">document.getElementById('saml').submit()</script>`,
    nonce,
  );
}
