/** A client that can receive NotificationResponse messages. */
export interface NotificationTarget {
  readonly processId: number;
  deliver(message: Buffer): void;
}

/**
 * Which clients LISTEN on which channel, as the engine keeps them per client (see
 * ClientChannels): each notification goes to the clients of its channel, never to the others.
 */
export class NotificationHub {
  private readonly listeners = new Map<string, Set<NotificationTarget>>();

  listen(client: NotificationTarget, channel: string): void {
    let clients = this.listeners.get(channel);
    if (!clients) {
      clients = new Set();
      this.listeners.set(channel, clients);
    }
    clients.add(client);
  }

  /** Makes `channels` the ones `client` listens on. */
  setChannels(client: NotificationTarget, channels: readonly string[]): void {
    this.unlisten(client);
    for (const channel of channels) this.listen(client, channel);
  }

  /** Removes `client` from `channels` (all of its channels when omitted). */
  unlisten(client: NotificationTarget, channels?: readonly string[]): void {
    for (const channel of channels ?? this.channelsOf(client)) {
      const clients = this.listeners.get(channel);
      if (!clients) continue;
      clients.delete(client);
      if (clients.size === 0) this.listeners.delete(channel);
    }
  }

  channelsOf(client: NotificationTarget): string[] {
    const channels: string[] = [];
    for (const [channel, clients] of this.listeners) if (clients.has(client)) channels.push(channel);
    return channels;
  }

  /** Sends a notification to the listeners of `channel`, naming `sender` as its origin. */
  route(channel: string, payload: string, senderProcessId: number): void {
    const clients = this.listeners.get(channel);
    if (!clients) return;
    const message = encodeNotification(senderProcessId, channel, payload);
    for (const client of clients) client.deliver(message);
  }
}

function encodeNotification(processId: number, channel: string, payload: string): Buffer {
  const channelBytes = Buffer.byteLength(channel);
  const payloadBytes = Buffer.byteLength(payload);
  const length = 4 + 4 + channelBytes + 1 + payloadBytes + 1;
  const out = Buffer.alloc(1 + length);
  out[0] = 0x41;
  out.writeInt32BE(length, 1);
  out.writeInt32BE(processId | 0, 5);
  out.write(channel, 9, 'utf8');
  out.write(payload, 9 + channelBytes + 1, 'utf8');
  return out;
}
