/* The join page. Nothing happens until the participant selects Join: then the page asks the consult service
   for an access token (which opens the room) and connects with Twilio Video, or, in the local practice room,
   reports its presence every few seconds and lists who else is there. */
(function () {
  'use strict';

  var root = document.getElementById('consult');
  if (!root) {
    return;
  }
  var data = root.dataset;
  var message = document.getElementById('message');

  function say(text) {
    if (message) {
      message.textContent = text || '';
    }
  }

  // Before the window: show the Join button by reloading when the room opens (if that is within a day).
  if (data.state === 'upcoming' && data.opensAt) {
    var wait = Date.parse(data.opensAt) - Date.now();
    if (wait < 24 * 3600 * 1000) {
      setTimeout(function () { window.location.reload(); }, Math.max(wait, 0) + 1000);
    }
    return;
  }
  if (data.state === 'not_ready') {
    setTimeout(function () { window.location.reload(); }, 30000);
    return;
  }
  if (data.state !== 'open') {
    return;
  }

  var lobby = document.getElementById('lobby');
  var room = document.getElementById('room');
  var left = document.getElementById('left');
  var list = document.getElementById('participants');
  var media = document.getElementById('media');
  var joinButton = document.getElementById('join');
  var leaveButton = document.getElementById('leave');
  var rejoinButton = document.getElementById('rejoin');
  var session = null;

  function show(section) {
    lobby.hidden = section !== lobby;
    room.hidden = section !== room;
    left.hidden = section !== left;
  }

  function roleLabel(identity, you) {
    var role = String(identity).split('-')[0];
    var text = role === 'provider' ? 'Provider' : role === 'patient' ? 'Patient' : 'Guest';
    return you ? text + ' (you)' : text;
  }

  function renderParticipants(people) {
    var items = people.map(function (person) {
      var item = document.createElement('li');
      item.textContent = roleLabel(person.identity, person.you);
      item.dataset.identity = person.identity;
      return item;
    });
    list.replaceChildren.apply(list, items);
    root.dataset.present = String(people.length);
  }

  function failure(text, status) {
    var error = new Error(text);
    error.status = status;
    return error;
  }

  async function requestAccess(refresh) {
    var response = await fetch(data.accessUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh: Boolean(refresh) }),
      cache: 'no-store',
      credentials: 'omit'
    });
    var body = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      throw failure(body.detail || 'We could not open the room. Please try again.', response.status);
    }
    return body;
  }

  function finish(text) {
    if (session) {
      session.stop();
      session = null;
    }
    show(null);
    joinButton.disabled = true;
    root.dataset.state = 'ended';
    say(text || 'This consultation has ended. The room is closed.');
  }

  function handleError(error) {
    if (error && error.status === 410) {
      finish(error.message);
      return;
    }
    if (session) {
      session.stop();
      session = null;
    }
    show(lobby);
    joinButton.disabled = false;
    root.dataset.error = (error && (error.code || error.name)) || 'error';
    say((error && error.message) || 'Something went wrong. Please try again.');
  }

  // --- the local practice room: presence with a heartbeat ------------------------------------------------

  async function localSession(grant) {
    var token = grant.access_token;
    var timer = null;
    var body = JSON.stringify({ access_token: token });

    async function beat() {
      var response = await fetch(data.presenceUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: body,
        cache: 'no-store',
        credentials: 'omit'
      });
      var answer = await response.json().catch(function () { return {}; });
      if (response.status === 410 || response.status === 401) {
        throw failure('This consultation has ended. The room is closed.', 410);
      }
      if (!response.ok) {
        throw failure(answer.detail || 'We lost touch with the room.', response.status);
      }
      renderParticipants(answer.participants || []);
    }

    function leave() {
      navigator.sendBeacon(data.leaveUrl, new Blob([body], { type: 'application/json' }));
    }

    await beat();
    var seconds = Number(data.heartbeatSeconds) || 5;
    timer = setInterval(function () { beat().catch(handleError); }, seconds * 1000);
    window.addEventListener('pagehide', leave);
    return {
      stop: function () {
        clearInterval(timer);
        window.removeEventListener('pagehide', leave);
        leave();
      }
    };
  }

  // --- Twilio Video ----------------------------------------------------------------------------------------

  function mediaError(error) {
    if (error && error.name === 'NotAllowedError') {
      return failure('Please allow the camera and microphone for this page, then select Join again.');
    }
    if (error && (error.name === 'NotFoundError' || error.name === 'OverconstrainedError')) {
      return failure('We could not find a camera or microphone on this device.');
    }
    var friendly = failure('We could not connect to the video service. Please check your connection and try again.');
    friendly.code = error && error.code;
    return friendly;
  }

  async function twilioSession(grant) {
    var Video = window.Twilio && window.Twilio.Video;
    if (!Video) {
      throw failure('The video software did not load. Please reload the page.');
    }
    var options = { name: grant.room_name, audio: true, video: { width: 640 } };
    var twilioRoom;
    try {
      twilioRoom = await Video.connect(grant.access_token, options);
    } catch (error) {
      // 53106 room not found, 53118 room completed: the room closed while empty; ask for it again, once.
      if (error && (error.code === 53106 || error.code === 53118)) {
        grant = await requestAccess(true);
        twilioRoom = await Video.connect(grant.access_token, { ...options, name: grant.room_name }).catch(function (e) {
          throw mediaError(e);
        });
      } else {
        throw mediaError(error);
      }
    }
    var leaving = false;

    function refreshList() {
      var people = [{ identity: twilioRoom.localParticipant.identity, you: true }];
      twilioRoom.participants.forEach(function (p) { people.push({ identity: p.identity, you: false }); });
      renderParticipants(people);
    }

    function tile(participant) {
      var box = document.createElement('div');
      box.className = 'tile';
      box.id = 'tile-' + participant.sid;
      box.setAttribute('aria-label', roleLabel(participant.identity, participant === twilioRoom.localParticipant));
      media.appendChild(box);
      return box;
    }

    function participantConnected(participant) {
      var box = tile(participant);
      participant.tracks.forEach(function (publication) {
        if (publication.isSubscribed && publication.track) {
          box.appendChild(publication.track.attach());
        }
      });
      participant.on('trackSubscribed', function (track) { box.appendChild(track.attach()); });
      participant.on('trackUnsubscribed', function (track) {
        track.detach().forEach(function (element) { element.remove(); });
      });
      refreshList();
    }

    var own = tile(twilioRoom.localParticipant);
    twilioRoom.localParticipant.videoTracks.forEach(function (publication) {
      own.appendChild(publication.track.attach());
    });
    twilioRoom.participants.forEach(participantConnected);
    twilioRoom.on('participantConnected', participantConnected);
    twilioRoom.on('participantDisconnected', function (participant) {
      var box = document.getElementById('tile-' + participant.sid);
      if (box) {
        box.remove();
      }
      refreshList();
    });
    twilioRoom.on('disconnected', function (_room, error) {
      twilioRoom.localParticipant.tracks.forEach(function (publication) {
        if (publication.track && publication.track.stop) {
          publication.track.stop();
        }
      });
      media.replaceChildren();
      if (!leaving) {
        finish(error && error.code === 20104
          ? 'Your access has expired: the consultation has ended.'
          : 'The consultation has ended. The room is closed.');
      }
    });
    refreshList();
    window.addEventListener('pagehide', function () { twilioRoom.disconnect(); });
    return {
      stop: function () {
        leaving = true;
        twilioRoom.disconnect();
      }
    };
  }

  // --- the buttons ---------------------------------------------------------------------------------------

  async function join() {
    joinButton.disabled = true;
    rejoinButton.disabled = true;
    say('Joining…');
    try {
      var grant = await requestAccess(false);
      session = grant.provider === 'twilio' ? await twilioSession(grant) : await localSession(grant);
      root.dataset.identity = grant.identity;
      show(room);
      say('');
    } catch (error) {
      handleError(error);
    } finally {
      rejoinButton.disabled = false;
    }
  }

  joinButton.addEventListener('click', join);
  rejoinButton.addEventListener('click', join);
  leaveButton.addEventListener('click', function () {
    if (session) {
      session.stop();
      session = null;
    }
    show(left);
    say('');
  });
}());
