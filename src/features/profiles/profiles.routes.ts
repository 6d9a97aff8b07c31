import { createRoute, z } from "@hono/zod-openapi";
import { bearerAuth, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { requireUser } from "../../middleware/auth";
import { AVATAR_FORMATS, AVATAR_MAX_BYTES, AVATAR_MAX_SIDE } from "./avatar.image";
import { deleteAvatar, openAvatar, readAvatarUpload, uploadAvatar } from "./avatar.service";
import {
  DirectoryQuerySchema,
  ProfilePageSchema,
  ProfileSchema,
  PublicProfileSchema,
  ReplaceProfileSchema,
  UpdateProfileSchema,
  UserIdParamSchema,
} from "./profiles.schemas";
import { countDirectoryRead, getPublicProfile, listDirectory, loadOwnProfile, profileView, updateProfile } from "./profiles.service";

const auth = { security: bearerAuth, middleware: [requireUser()] };
const profileResponse = jsonContent(z.object({ profile: ProfileSchema }), "The profile");

/** The URL names the avatar's version, so that URL's bytes never change (RFC 8246 immutable). */
const CACHE_CURRENT = "public, max-age=31536000, immutable";
/** A URL without the current version may show another image tomorrow: revalidate (cheap 304). */
const CACHE_UNVERSIONED = "public, no-cache";
/** What the image's 200 and 304 carry, declared for clients (a generated one reads only declared headers). */
const AVATAR_CACHING_HEADERS = {
  ETag: { description: "The image's entity tag: send it back as If-None-Match for a 304.", schema: { type: "string" as const } },
  "Cache-Control": {
    description: `\`${CACHE_CURRENT}\` for the current avatar_url (its version in \`v\`), \`${CACHE_UNVERSIONED}\` otherwise.`,
    schema: { type: "string" as const },
  },
};

// A plain OpenAPI schema (not zod) documents the upload without zod-openapi adding a form
// validator, which would buffer the whole body before the size limit applies.
const binary = { schema: { type: "string" as const, format: "binary" } };
const uploadBody = {
  required: true,
  description: `A PNG, JPEG, WebP or GIF image (decided by its bytes), at most ${AVATAR_MAX_BYTES} bytes and ${AVATAR_MAX_SIDE}×${AVATAR_MAX_SIDE} pixels: the raw bytes, or multipart/form-data with the file in the field \`avatar\`.`,
  content: {
    ...Object.fromEntries(Object.values(AVATAR_FORMATS).map((f) => [f.contentType, binary])),
    "multipart/form-data": {
      schema: { type: "object" as const, properties: { avatar: { type: "string" as const, format: "binary" } }, required: ["avatar"] },
    },
  },
};

export const profilesRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/me/profile",
      tags: ["profiles"],
      summary: "Your profile",
      ...auth,
      responses: { 200: profileResponse, ...problems(401) },
    }),
    async (c) => c.json({ profile: profileView(await loadOwnProfile(c.var.deps, c.var.user.id)) }, 200),
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/me/profile",
      tags: ["profiles"],
      summary: "Replace your profile",
      description: "Sets every editable field; omitted fields are cleared to null.",
      ...auth,
      request: { body: jsonBody(ReplaceProfileSchema) },
      responses: { 200: profileResponse, ...problems(400, 401, 413, 415, 429) },
    }),
    async (c) => {
      const profile = await updateProfile(c.var.deps, c.var.user, c.req.valid("json"), "replace");
      return c.json({ profile: profileView(profile) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/me/profile",
      tags: ["profiles"],
      summary: "Change some profile fields",
      ...auth,
      request: { body: jsonBody(UpdateProfileSchema) },
      responses: { 200: profileResponse, ...problems(400, 401, 413, 415, 429) },
    }),
    async (c) => {
      const profile = await updateProfile(c.var.deps, c.var.user, c.req.valid("json"), "patch");
      return c.json({ profile: profileView(profile) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "put",
      path: "/me/avatar",
      tags: ["profiles"],
      summary: "Upload your avatar",
      description:
        "Replaces the previous avatar, whose object is deleted. SVG, HTML and files carrying anything besides the image are refused (415).",
      ...auth,
      request: { body: uploadBody },
      responses: {
        200: jsonContent(z.object({ avatar_url: z.string() }), "Stored; the URL changes with every upload"),
        ...problems(400, 401, 413, 415, 422, 429, 503),
      },
    }),
    async (c) => {
      const bytes = await readAvatarUpload(c.req.raw);
      return c.json(await uploadAvatar(c.var.deps, c.var.user, c.var.token.sessionId, bytes), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/me/avatar",
      tags: ["profiles"],
      summary: "Remove your avatar",
      ...auth,
      responses: { 204: { description: "Removed (or there was none)" }, ...problems(401, 429) },
    }),
    async (c) => {
      await deleteAvatar(c.var.deps, c.var.user, c.var.token.sessionId);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/profiles",
      tags: ["profiles"],
      summary: "The public profile directory",
      description:
        "Verified, enabled accounts in registration order. Pass the previous page's `next_cursor` as `cursor` for the next page. " +
        "A search (`q`) reads every public account, so searches count against a per-IP allowance (120 a minute, shared with the website's directory pages; 429 past it).",
      request: { query: DirectoryQuerySchema },
      responses: { 200: jsonContent(ProfilePageSchema, "A page of public profiles"), ...problems(400, 429) },
    }),
    async (c) => {
      const query = c.req.valid("query");
      if (query.q) await countDirectoryRead(c.var.deps);
      return c.json(await listDirectory(c.var.deps, query), 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/profiles/{user_id}",
      tags: ["profiles"],
      summary: "A public profile",
      request: { params: UserIdParamSchema },
      responses: { 200: jsonContent(z.object({ profile: PublicProfileSchema }), "The public profile"), ...problems(400, 404) },
    }),
    async (c) => c.json({ profile: await getPublicProfile(c.var.deps, c.req.valid("param").user_id) }, 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/profiles/{user_id}/avatar",
      tags: ["profiles"],
      summary: "A public avatar image",
      description: "Use the profile's `avatar_url`: that URL is cacheable forever. Answers If-None-Match with 304.",
      request: {
        params: UserIdParamSchema,
        query: z.object({ v: z.string().max(64).optional().openapi({ description: "The avatar's version, from avatar_url" }) }),
      },
      responses: {
        200: {
          description: "The image",
          headers: AVATAR_CACHING_HEADERS,
          content: Object.fromEntries(Object.values(AVATAR_FORMATS).map((f) => [f.contentType, binary])),
        },
        304: { description: "Not modified", headers: AVATAR_CACHING_HEADERS },
        ...problems(400, 404),
      },
    }),
    async (c) => {
      const avatar = await openAvatar(c.var.deps, c.req.valid("param").user_id, {
        version: c.req.valid("query").v,
        ifNoneMatch: c.req.header("if-none-match"),
      });
      const headers = new Headers({
        ETag: avatar.etag,
        "Cache-Control": avatar.current ? CACHE_CURRENT : CACHE_UNVERSIONED,
        "X-Content-Type-Options": "nosniff",
        // The image is never a document: nothing in it may load or run, even if opened directly.
        // `sandbox`: opened as a document anyway (a browser ignoring nosniff), it runs as nothing's origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
      });
      if (avatar.status === 304) return new Response(null, { status: 304, headers });
      headers.set("Content-Type", avatar.contentType);
      headers.set("Content-Length", String(avatar.size));
      return new Response(avatar.body, { status: 200, headers });
    },
  );
