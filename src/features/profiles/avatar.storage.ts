/** Where avatars live in R2: `avatars/{user_id}/{random}.{ext}`, keys made only by the server. */

export function avatarPrefix(userId: string): string {
  return `avatars/${userId}/`;
}

/** Removes every avatar object of a user (account deletion). Failures are logged, not thrown. */
export async function deleteAllAvatarObjects(bucket: R2Bucket, userId: string): Promise<void> {
  try {
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: avatarPrefix(userId), cursor });
      if (page.objects.length > 0) await bucket.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  } catch (error) {
    console.error(`[avatars] could not delete avatar objects of deleted user ${userId}`, error);
  }
}
