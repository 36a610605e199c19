// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAgentMarketplace} from "../../../contracts/interfaces/IAgentMarketplace.sol";
import {ISplitsLedger} from "../../../contracts/interfaces/ISplitsLedger.sol";
import {IMockUSDC, ITestEscrow, ITestLedger, ITestMarketplace, ITestRegistry} from "../utils/Interfaces.sol";
import {GasCap} from "../utils/GasCap.sol";
import {Suite} from "../utils/Suite.sol";

/// @notice Drives the AgentMarketplace through bounded random actions of agent owners, payers (from
/// their ledger balance, or by x402 authorization through a relayer), bursts of payers whose referrers
/// are fresh accounts or ledger splits (nested ones included), anyone distributing, senders of plain USDC
/// to payment addresses (also before the agent is listed), and USDC's pauser and blacklister. It keeps a
/// model of every agent's pending payments, the USDC waiting at payment addresses, every referrer and
/// what the ledger holds, and checks each action's outcome against it.
/// @dev Unexpected successes or reverts are counted in `violations` (nothing here reverts: the fuzzer
/// would discard it). Gas metering is paused for the handler's own bookkeeping and resumed only around
/// measured distributions, so every action fits the 2^24 a call may use.
contract MarketplaceHandler is Suite, GasCap {
    uint256 public constant MAX_AGENTS = 5;
    uint256 public constant MAX_BURST_PAYERS = 64;
    uint256 internal constant MAX_PENDING = 256;
    uint256 internal constant SCALE = 1_000_000;
    address internal constant FUNDER = address(0xF0F0);
    address internal constant DONOR = address(0xD0D0);
    address internal constant SINK = address(0x51CC);
    address internal constant CREATOR = address(0xC0C0);
    address internal constant RELAYER = address(0x4E1A);
    address internal constant STRANGER = address(0x5757);

    struct AgentGhost {
        uint256 id;
        address owner;
        IAgentMarketplace.AgentStatus status;
        uint256 price;
        bytes flow; // abi.encode(FlowOfFunds): a struct with nested arrays cannot be copied to storage
        address paymentAddress;
    }

    AgentGhost[] internal _agents;
    mapping(uint256 index => IAgentMarketplace.PendingPayment[]) internal _pending;
    /// @notice USDC sent to a payment address (of a listed agent, or predicted) and not yet distributed.
    mapping(address paymentAddress => uint256) public unattributedAt;
    address[] internal _paymentAddresses;
    mapping(address paymentAddress => bool) internal _trackedAddress;

    uint256[4] internal payerKeys = [uint256(0xBA0001), 0xBA0002, 0xBA0003, 0xBA0004];
    address[] internal _payers;
    uint256 public burstPayers;
    address[3] internal owners = [address(0x0A0001), address(0x0A0002), address(0x0A0003)];
    address[2] internal referrerAccounts = [address(0x4EF001), address(0x4EF002)];
    address[4] internal flowAccounts = [address(0xF10001), address(0xF10002), address(0xF10003), address(0xF10004)];
    uint256[2] internal budgetIds;

    /// @notice Referrer splits and flow recipients: A (flat), B ⊃ A, C ⊃ B (depth 3). Leaves L1..L7
    /// belong to one split each and to nothing else, so their balances follow from the splits alone.
    address[3] public splits;
    address[7] public leaves = [
        address(0x1EAF01),
        address(0x1EAF02),
        address(0x1EAF03),
        address(0x1EAF04),
        address(0x1EAF05),
        address(0x1EAF06),
        address(0x1EAF07)
    ];
    /// @notice What `ledger.distribute(split)` itself fanned out of each split (nested parts excluded).
    mapping(address split => uint256) public ownDistributed;
    /// @notice What a parent's distribution passed through a nested split (B in C, A in B); a nested split
    /// the token blacklists keeps its part as its own balance instead, until it is distributed itself.
    mapping(address split => uint256) public passedThrough;

    mapping(address account => address) public ghostReferrer;
    address[] internal _accounts;
    mapping(address account => bool) internal _known;

    uint256 public ghostNow;
    uint256 public ghostLedgerIn;
    uint256 public ghostLedgerOut;
    uint256 public maxDistributionGas;
    uint256 public maxDistributionPending;
    uint256 internal _nonce;

    uint256 public violations;
    string public firstViolation;
    mapping(string action => uint256) public calls;

    constructor(
        IMockUSDC usdc_,
        ITestLedger ledger_,
        ITestRegistry registry_,
        ITestEscrow escrow_,
        ITestMarketplace marketplace_,
        address admin_
    ) {
        usdc = usdc_;
        ledger = ledger_;
        registry = registry_;
        escrow = escrow_;
        marketplace = marketplace_;
        admin = admin_;
        ghostNow = block.timestamp;

        // Referrer splits: A = {L1 20%, L2 30%; L3}, B = {L4 25%, A 50%; L7}, C = {B 60%, L5 10%; L6}.
        splits[0] = _split(leaves[0], 200_000, leaves[1], 300_000, leaves[2]);
        splits[1] = _split(leaves[3], 250_000, splits[0], 500_000, leaves[6]);
        splits[2] = _split(splits[1], 600_000, leaves[4], 100_000, leaves[5]);
        for (uint256 i; i < 7; ++i) {
            _know(leaves[i]);
        }

        // Budgets a flow may fund: one long-lived, one that expires (its share then goes to its creator).
        address[] memory agents = new address[](1);
        agents[0] = CREATOR;
        usdc.mint(CREATOR, 2_000_000);
        vm.startPrank(CREATOR);
        usdc.approve(address(escrow), 2_000_000);
        budgetIds[0] = escrow.createBudget(1_000_000, 1_000_000, block.timestamp + 300 days, agents);
        budgetIds[1] = escrow.createBudget(1_000_000, 1_000_000, block.timestamp + 3 days, agents);
        vm.stopPrank();
        ghostLedgerIn += 2_000_000;
        _know(CREATOR);

        // FUNDER keeps a large ledger balance and tops payers up with internal transfers (no token moves).
        _deposit(FUNDER, 1e15);
        for (uint256 i; i < 4; ++i) {
            address payer = vm.addr(payerKeys[i]);
            _payers.push(payer);
            _know(payer);
            vm.prank(payer);
            ledger.approve(address(marketplace), type(uint256).max);
        }
        for (uint256 i; i < 3; ++i) {
            _know(owners[i]);
        }
        for (uint256 i; i < 4; ++i) {
            _know(flowAccounts[i]);
        }
        _know(referrerAccounts[0]);
        _know(referrerAccounts[1]);
        _know(treasury);
    }

    modifier step() {
        vm.pauseGasMetering();
        if (block.timestamp < ghostNow) vm.warp(ghostNow);
        else ghostNow = block.timestamp;
        _;
        vm.resumeGasMetering();
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function agentCount() external view returns (uint256) {
        return _agents.length;
    }

    function agentGhost(uint256 index) external view returns (AgentGhost memory) {
        return _agents[index];
    }

    function pendingOf(uint256 index) external view returns (IAgentMarketplace.PendingPayment[] memory) {
        return _pending[index];
    }

    /// @notice What `distribute` of agent `index` takes: its id, flow and pending payments.
    function distribution(uint256 index)
        external
        view
        returns (uint256 agentId, IAgentMarketplace.FlowOfFunds memory flow, IAgentMarketplace.PendingPayment[] memory)
    {
        AgentGhost storage a = _agents[index];
        return (a.id, _flowOf(a), _pending[index]);
    }

    function paymentAddresses() external view returns (address[] memory) {
        return _paymentAddresses;
    }

    /// @notice Every ledger account the suite can credit, except the splits and the custodians.
    function accounts() external view returns (address[] memory) {
        return _accounts;
    }

    /*//////////////////////////////////////////////////////////////
                                LISTINGS
    //////////////////////////////////////////////////////////////*/

    function list(uint256 ownerSeed, uint256 price, uint256 flowSeed, uint256 referrerSeed) external step {
        if (_agents.length >= MAX_AGENTS) return;
        address owner = owners[ownerSeed % 3];
        price = bound(price, 1_000, 1_000_000);
        IAgentMarketplace.FlowOfFunds memory flow = _randomFlow(flowSeed, price);
        address referrer = _referrerCandidate(referrerSeed);
        address predicted = marketplace.nextPaymentAddress(owner);
        IAgentMarketplace.AgentMetadata memory metadata = IAgentMarketplace.AgentMetadata("Agent", "", "https://a");
        vm.prank(owner);
        try marketplace.list(metadata, price, flow, referrer) returns (uint256 agentId) {
            if (marketplace.paymentAddressOf(agentId) != predicted) _violation("payment address not as predicted");
            _agents.push(
                AgentGhost(agentId, owner, IAgentMarketplace.AgentStatus.Active, price, abi.encode(flow), predicted)
            );
            _trackPaymentAddress(predicted);
            _recordReferrer(owner, referrer);
            ++calls["list"];
        } catch {
            _violation("list reverted");
        }
    }

    /// @notice Plain USDC sent to the address `owner`'s next listing will get: it becomes that agent's.
    function prefund(uint256 ownerSeed, uint256 amount) external step {
        address paymentAddress = marketplace.nextPaymentAddress(owners[ownerSeed % 3]);
        if (_plainTransfer(paymentAddress, bound(amount, 1, 5_000_000))) ++calls["prefund"];
    }

    function updateTerms(uint256 agentSeed, uint256 price, uint256 flowSeed, bool asStranger) external step {
        if (_agents.length == 0) return;
        uint256 index = agentSeed % _agents.length;
        AgentGhost storage a = _agents[index];
        price = bound(price, 1_000, 1_000_000);
        IAgentMarketplace.FlowOfFunds memory flow = _randomFlow(flowSeed, price);
        bool shouldWork = !asStranger && a.status != IAgentMarketplace.AgentStatus.Retired;
        bytes memory data =
            abi.encodeCall(marketplace.updateTerms, (a.id, price, flow, _flowOf(a), _pending[index]));
        // updateTerms first distributes everything received under the old terms (when there is any).
        (bool ok, bool distributed) = _distributeVia(index, asStranger ? STRANGER : a.owner, data, false);
        if (ok != shouldWork) {
            _violation(ok ? "updateTerms by a stranger or of a retired agent succeeded" : "updateTerms reverted");
        }
        if (!ok) return;
        (a.price, a.flow) = (price, abi.encode(flow));
        if (marketplace.getAgent(a.id).flowHash != marketplace.hashFlow(flow)) _violation("new terms not stored");
        ++calls[distributed ? "updateTerms (distributed)" : "updateTerms"];
    }

    function transferAgent(uint256 agentSeed, uint256 ownerSeed, bool asStranger) external step {
        if (_agents.length == 0) return;
        AgentGhost storage a = _agents[agentSeed % _agents.length];
        address newOwner = owners[ownerSeed % 3];
        bool shouldWork = !asStranger && a.status != IAgentMarketplace.AgentStatus.Retired;
        vm.prank(asStranger ? STRANGER : a.owner);
        try marketplace.transferAgent(a.id, newOwner) {
            if (!shouldWork) _violation("transferAgent by a stranger or of a retired agent succeeded");
            a.owner = newOwner;
            ++calls["transferAgent"];
        } catch {
            if (shouldWork) _violation("transferAgent reverted");
        }
    }

    /// @param action 0: pause, 1: unpause, 2: retire (final; what it received is still distributed).
    function setStatus(uint256 agentSeed, uint256 action, bool asStranger) external step {
        if (_agents.length == 0) return;
        AgentGhost storage a = _agents[agentSeed % _agents.length];
        action %= 3;
        IAgentMarketplace.AgentStatus status = a.status;
        IAgentMarketplace.AgentStatus target;
        bool shouldWork = !asStranger && status != IAgentMarketplace.AgentStatus.Retired;
        vm.prank(asStranger ? STRANGER : a.owner);
        if (action == 0) {
            target = IAgentMarketplace.AgentStatus.Paused;
            shouldWork = shouldWork && status == IAgentMarketplace.AgentStatus.Active;
            try marketplace.pause(a.id) {} catch {}
        } else if (action == 1) {
            target = IAgentMarketplace.AgentStatus.Active;
            shouldWork = shouldWork && status == IAgentMarketplace.AgentStatus.Paused;
            try marketplace.unpause(a.id) {} catch {}
        } else {
            target = IAgentMarketplace.AgentStatus.Retired;
            try marketplace.retire(a.id) {} catch {}
        }
        IAgentMarketplace.AgentStatus actual = marketplace.getAgent(a.id).status;
        if (actual != (shouldWork ? target : status)) _violation("agent status not as modelled");
        a.status = actual;
        if (shouldWork) ++calls["setStatus"];
    }

    /*//////////////////////////////////////////////////////////////
                                PAYMENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice A payer pays from its ledger balance, naming a referrer (recorded only if it has none).
    function payFromBalance(uint256 agentSeed, uint256 payerSeed, uint256 amountSeed, uint256 referrerSeed)
        external
        step
    {
        if (_agents.length == 0) return;
        uint256 index = agentSeed % _agents.length;
        address payer = _payers[payerSeed % _payers.length];
        uint256 price = _agents[index].price;
        // Now and then one unit below the price, which must be refused.
        uint256 amount = amountSeed % 8 == 0 ? price - 1 : price + bound(amountSeed >> 3, 0, 3 * price);
        if (_payFromBalance(index, payer, amount, _referrerCandidate(referrerSeed))) ++calls["payFromBalance"];
    }

    /// @notice An x402 payment: the payer's EIP-3009 authorization to the payment address, submitted by a
    /// relayer. It carries no referrer: the payer's recorded one (if any) is attributed.
    function payWithAuthorization(uint256 agentSeed, uint256 payerSeed, uint256 amountSeed) external step {
        if (_agents.length == 0) return;
        uint256 index = agentSeed % _agents.length;
        AgentGhost storage a = _agents[index];
        uint256 key = payerKeys[payerSeed % 4];
        address payer = vm.addr(key);
        uint256 amount = amountSeed % 8 == 0 ? a.price - 1 : a.price + bound(amountSeed >> 3, 0, 3 * a.price);
        if (!usdc.paused() && !usdc.isBlacklisted(payer)) usdc.mint(payer, amount);
        bool shouldWork = _accepts(index, amount) && !usdc.paused() && !usdc.isBlacklisted(payer)
            && !usdc.isBlacklisted(a.paymentAddress) && !usdc.isBlacklisted(address(ledger))
            && usdc.balanceOf(payer) >= amount;
        bytes32 nonce = keccak256(abi.encode("x402", ++_nonce));
        uint256 validBefore = ghostNow + 1 hours;
        bytes memory signature = _authorize(key, a.paymentAddress, amount, validBefore, nonce);
        uint256 held = usdc.balanceOf(a.paymentAddress);
        uint256 balanceBefore = ledger.balanceOf(address(marketplace));
        vm.prank(RELAYER);
        try marketplace.payWithAuthorization(a.id, payer, amount, 0, validBefore, nonce, signature) {
            if (!shouldWork) _violation("payWithAuthorization succeeded where it should not");
            if (ledger.balanceOf(address(marketplace)) != balanceBefore + amount) _violation("x402: not in the ledger");
            if (usdc.balanceOf(a.paymentAddress) != held) _violation("x402: the payment address balance changed");
            _pending[index].push(IAgentMarketplace.PendingPayment(payer, ghostReferrer[payer], amount));
            ghostLedgerIn += amount;
            ++calls["payWithAuthorization"];
        } catch {
            if (shouldWork) _violation("payWithAuthorization reverted");
        }
    }

    /// @notice Up to 32 payments from distinct payers (new ones while there is room), each new payer
    /// naming a fresh account or one of the splits as its referrer.
    function payBurst(uint256 agentSeed, uint256 count, uint256 kindSeed) external step {
        if (_agents.length == 0) return;
        uint256 index = agentSeed % _agents.length;
        uint256 price = _agents[index].price;
        count = bound(count, 1, 32);
        for (uint256 k; k < count; ++k) {
            address payer;
            address referrer;
            if (burstPayers < MAX_BURST_PAYERS) {
                payer = address(uint160(0xB0B000 + burstPayers));
                referrer = (kindSeed >> k) % 2 == 0
                    ? address(uint160(0x4EF100 + burstPayers))
                    : splits[(kindSeed >> (k + 1)) % 3];
                ++burstPayers;
                _payers.push(payer);
                _know(payer);
                _know(referrer);
                vm.prank(payer);
                ledger.approve(address(marketplace), type(uint256).max);
            } else {
                payer = _payers[4 + (kindSeed + k) % MAX_BURST_PAYERS];
            }
            bool full = _pending[index].length >= MAX_PENDING;
            _payFromBalance(index, payer, price + (kindSeed + k) % price, referrer);
            if (full) break;
        }
        ++calls["payBurst"];
    }

    /// @notice Fills an active agent's chain to MAX_PENDING; the next payment must then be refused.
    function fillChain(uint256 agentSeed) external step {
        if (_agents.length == 0) return;
        uint256 index = agentSeed % _agents.length;
        if (_agents[index].status != IAgentMarketplace.AgentStatus.Active) return;
        uint256 price = _agents[index].price;
        for (uint256 k; _pending[index].length < MAX_PENDING; ++k) {
            if (k == 2 * MAX_PENDING) return; // every payer blacklisted
            address payer = _payers[k % _payers.length];
            if (usdc.isBlacklisted(payer)) continue;
            if (!_payFromBalance(index, payer, price + k % 7, address(0))) return;
        }
        _payFromBalance(index, _payers[0], price, address(0)); // refused: the chain is full
        ++calls["fillChain"];
    }

    /// @notice Plain USDC sent straight to an agent's payment address (not through the marketplace).
    function plainTransfer(uint256 agentSeed, uint256 amount) external step {
        if (_agents.length == 0) return;
        if (_plainTransfer(_agents[agentSeed % _agents.length].paymentAddress, bound(amount, 1, 5_000_000))) {
            ++calls["plainTransfer"];
        }
    }

    function setReferrer(uint256 accountSeed, uint256 referrerSeed) external step {
        address account = accountSeed % 2 == 0 ? _payers[accountSeed % _payers.length] : owners[accountSeed % 3];
        address referrer = _referrerCandidate(referrerSeed);
        bool shouldWork = _recordable(account, referrer);
        vm.prank(account);
        try marketplace.setReferrer(referrer) {
            if (!shouldWork) _violation("setReferrer replaced a referrer, or set none, self or a custodian");
            ghostReferrer[account] = referrer;
            ++calls["setReferrer"];
        } catch {
            if (shouldWork) _violation("setReferrer reverted");
            else ++calls["setReferrer refused"];
        }
    }

    /*//////////////////////////////////////////////////////////////
                              DISTRIBUTION
    //////////////////////////////////////////////////////////////*/

    function distribute(uint256 agentSeed) external step {
        if (_agents.length == 0) return;
        uint256 index = agentSeed % _agents.length;
        AgentGhost storage a = _agents[index];
        bytes memory data = abi.encodeCall(marketplace.distribute, (a.id, _flowOf(a), _pending[index]));
        bool shouldWork = _pending[index].length != 0 || _movable(a.paymentAddress);
        (bool ok,) = _distributeVia(index, RELAYER, data, true);
        if (ok != shouldWork) _violation(ok ? "distribute of nothing succeeded" : "distribute reverted");
        if (ok) ++calls["distribute"];
    }

    /// @notice Anyone distributes a split, now and then after paying it from a ledger balance first.
    function distributeSplit(uint256 splitSeed, uint256 payment) external step {
        uint256 which = splitSeed % 3;
        address split = splits[which];
        if (payment % 2 == 0) _fromFunder(split, bound(payment, 1, 10_000_000));
        uint256 balance = ledger.balanceOf(split);
        bool shouldWork = balance != 0 && !usdc.isBlacklisted(split);
        // What the nested splits will pass through (computed before, from the lifetime totals).
        (uint256 toB, uint256 toA) = which == 2 ? _nestedParts(balance) : (0, which == 1 ? _part(1, balance) : 0);
        try ledger.distribute(split) {
            if (!shouldWork) _violation("distributing an empty or blacklisted split succeeded");
            ownDistributed[split] += balance;
            passedThrough[splits[1]] += toB;
            passedThrough[splits[0]] += toA;
            bool kept = which != 0 && usdc.isBlacklisted(splits[which - 1]);
            ++calls[kept ? "distributeSplit (nested split kept its part)" : "distributeSplit"];
        } catch {
            if (shouldWork) _violation("distributing a split reverted");
        }
    }

    /*//////////////////////////////////////////////////////////////
                           LEDGER AND THE TOKEN
    //////////////////////////////////////////////////////////////*/

    function withdraw(uint256 accountSeed, uint256 amount) external step {
        address account = accountSeed % 3 == 0
            ? flowAccounts[accountSeed % 4]
            : accountSeed % 3 == 1 ? referrerAccounts[accountSeed % 2] : treasury;
        uint256 balance = ledger.balanceOf(account);
        if (balance == 0) return;
        amount = bound(amount, 1, balance);
        bool shouldWork = !usdc.paused() && !usdc.isBlacklisted(account) && !usdc.isBlacklisted(address(ledger));
        vm.prank(account);
        try ledger.withdraw(SINK, amount) {
            if (!shouldWork) _violation("withdraw succeeded while the token refuses it");
            ghostLedgerOut += amount;
            ++calls["withdraw"];
        } catch {
            if (shouldWork) _violation("withdraw reverted");
        }
    }

    function setTokenPaused(bool paused) external step {
        vm.prank(admin); // the test contract deployed MockUSDC: it is its pauser
        if (paused) usdc.pause();
        else usdc.unpause();
        ++calls[paused ? "pauseToken" : "unpauseToken"];
    }

    /// @notice USDC blacklists (or clears) a payer, a payment address, the ledger, the marketplace or a split.
    function setBlacklisted(uint256 partySeed, bool listed) external step {
        address party;
        uint256 which = partySeed % 5;
        if (which == 0) party = _payers[(partySeed >> 3) % 4];
        else if (which == 1 && _agents.length != 0) party = _agents[(partySeed >> 3) % _agents.length].paymentAddress;
        else if (which == 2) party = address(ledger);
        else if (which == 3) party = address(marketplace);
        else party = splits[(partySeed >> 3) % 3];
        vm.prank(admin);
        if (listed) usdc.blacklist(party);
        else usdc.unBlacklist(party);
        ++calls[listed ? "blacklist" : "unBlacklist"];
    }

    function warp(uint256 seconds_) external step {
        ghostNow += bound(seconds_, 1, 2 days);
        vm.warp(ghostNow);
        ++calls["warp"];
    }

    /*//////////////////////////////////////////////////////////////
                               INTERNALS
    //////////////////////////////////////////////////////////////*/

    /// @dev Whether agent `index` takes a payment of `amount` now (status, price, room in its chain).
    function _accepts(uint256 index, uint256 amount) internal view returns (bool) {
        AgentGhost storage a = _agents[index];
        return a.status == IAgentMarketplace.AgentStatus.Active && amount >= a.price
            && _pending[index].length < MAX_PENDING;
    }

    function _payFromBalance(uint256 index, address payer, uint256 amount, address referrer) internal returns (bool) {
        AgentGhost storage a = _agents[index];
        _fromFunder(payer, amount);
        bool shouldWork = _accepts(index, amount) && !usdc.isBlacklisted(payer);
        uint256 balanceBefore = ledger.balanceOf(address(marketplace));
        vm.prank(payer);
        try marketplace.payFromBalance(a.id, amount, referrer) {
            if (!shouldWork) _violation("payFromBalance succeeded where it should not");
            if (ledger.balanceOf(address(marketplace)) != balanceBefore + amount) _violation("payment not held");
            _recordReferrer(payer, referrer);
            _pending[index].push(IAgentMarketplace.PendingPayment(payer, ghostReferrer[payer], amount));
            return true;
        } catch (bytes memory reason) {
            if (shouldWork) _violation("payFromBalance reverted");
            bool takesIt = a.status == IAgentMarketplace.AgentStatus.Active && amount >= a.price;
            if (_pending[index].length >= MAX_PENDING && takesIt) {
                if (bytes4(reason) != IAgentMarketplace.MarketplacePendingFull.selector) {
                    _violation("a full chain refused a payment with a wrong error");
                } else {
                    ++calls["payment refused: chain full"];
                }
            }
            // The payer keeps the funds it was given for it.
            return false;
        }
    }

    /// @dev Runs a distribution (distribute, or updateTerms that distributes first) from `caller`,
    /// checks it credited exactly what was pending plus what the payment address could give, measures
    /// its gas, and updates the model. Returns whether it succeeded and whether anything was distributed.
    function _distributeVia(uint256 index, address caller, bytes memory data, bool measure)
        internal
        returns (bool ok, bool distributed)
    {
        AgentGhost storage a = _agents[index];
        uint256 attributed;
        for (uint256 i; i < _pending[index].length; ++i) {
            attributed += _pending[index][i].amount;
        }
        uint256 held = usdc.balanceOf(a.paymentAddress);
        uint256 moved = _movable(a.paymentAddress) ? held : 0;
        uint256 creditedBefore = _totalCredited();
        uint256 marketplaceBefore = ledger.balanceOf(address(marketplace));
        vm.resumeGasMetering();
        vm.prank(caller);
        (bool success,, uint256 used) = _measuredCall(address(marketplace), data);
        vm.pauseGasMetering();
        if (!success) return (false, false);
        distributed = attributed != 0 || moved != 0;
        if (measure || distributed) {
            uint256 gas = _transactionGas(data, used);
            if (gas > maxDistributionGas) maxDistributionGas = gas;
            if (_pending[index].length > maxDistributionPending) maxDistributionPending = _pending[index].length;
            if (gas >= TRANSACTION_GAS_CAP) _violation("a distribution exceeded the transaction gas cap");
        }
        if (_totalCredited() != creditedBefore + attributed + moved) {
            _violation("distribution credited other than pending + the payment address's funds");
        }
        if (ledger.balanceOf(address(marketplace)) + attributed != marketplaceBefore) {
            _violation("distribution took other than the pending payments from the marketplace's balance");
        }
        if (usdc.balanceOf(a.paymentAddress) != held - moved) _violation("payment address kept a wrong amount");
        (,, uint256 pending) = marketplace.paymentChain(a.id);
        if (pending != 0) _violation("payments still pending after a distribution");
        delete _pending[index];
        unattributedAt[a.paymentAddress] -= moved;
        ghostLedgerIn += moved;
        return (true, distributed);
    }

    /// @dev Σ ledger balances of everyone a distribution can credit (every account, split and the escrow).
    function _totalCredited() internal view returns (uint256 total) {
        for (uint256 i; i < _accounts.length; ++i) {
            total += ledger.balanceOf(_accounts[i]);
        }
        for (uint256 i; i < 3; ++i) {
            total += ledger.balanceOf(splits[i]);
        }
        total += ledger.balanceOf(address(escrow));
    }

    /// @dev Whether `distribute` can move the USDC at `paymentAddress` into the ledger now.
    function _movable(address paymentAddress) internal view returns (bool) {
        return usdc.balanceOf(paymentAddress) != 0 && !usdc.paused() && !usdc.isBlacklisted(paymentAddress)
            && !usdc.isBlacklisted(address(ledger));
    }

    /// @dev Sends `amount` USDC to `to` with a plain transfer, when the token allows it now.
    function _plainTransfer(address to, uint256 amount) internal returns (bool) {
        if (usdc.paused() || usdc.isBlacklisted(to)) return false;
        unattributedAt[to] += amount;
        _trackPaymentAddress(to);
        usdc.mint(DONOR, amount);
        vm.prank(DONOR);
        return usdc.transfer(to, amount);
    }

    /// @dev Credits `to` from FUNDER's ledger balance (an internal transfer: no token moves).
    function _fromFunder(address to, uint256 amount) internal {
        vm.prank(FUNDER);
        ledger.transfer(to, amount);
    }

    function _deposit(address account, uint256 amount) internal {
        usdc.mint(account, amount);
        vm.startPrank(account);
        usdc.approve(address(ledger), amount);
        ledger.pay(account, amount);
        vm.stopPrank();
        ghostLedgerIn += amount;
        _know(account);
    }

    /// @dev EIP-3009 TransferWithAuthorization of `amount` from `key`'s address to `to`, as USDC checks it.
    function _authorize(uint256 key, address to, uint256 amount, uint256 validBefore, bytes32 nonce)
        internal
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(
            abi.encode(usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), vm.addr(key), to, amount, 0, validBefore, nonce)
        );
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(key, keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash)));
        return abi.encodePacked(r, s, v);
    }

    /// @dev What distributing `amount` more through C passes through B, and through B on to A: a nested
    /// split the token blacklists keeps its part (and passes nothing on).
    function _nestedParts(uint256 amount) internal view returns (uint256 toB, uint256 toA) {
        if (usdc.isBlacklisted(splits[1])) return (0, 0);
        toB = _part(2, amount);
        toA = _part(1, toB);
    }

    /// @dev The part of `amount` more through split `index` (C = 2 passes 60% to B, B = 1 passes 50% to A)
    /// that its nested split passes through (zero when that one is blacklisted and keeps it).
    function _part(uint256 index, uint256 amount) internal view returns (uint256) {
        if (usdc.isBlacklisted(splits[index - 1])) return 0;
        (uint256 before,) = ledger.splitTotals(splits[index]);
        uint256 share = index == 2 ? 600_000 : 500_000;
        return (before + amount) * share / SCALE - before * share / SCALE;
    }

    /// @dev Models the marketplace's implicit referrer recording (listing, payment from balance).
    function _recordReferrer(address account, address referrer) internal {
        if (!_recordable(account, referrer)) return;
        ghostReferrer[account] = referrer;
    }

    /// @dev Whether `referrer` can become `account`'s referrer: none yet, not itself, not zero, and not a
    /// custodian (whose ledger balance only accounts for others' funds: a reward there would be lost).
    function _recordable(address account, address referrer) internal view returns (bool) {
        return ghostReferrer[account] == address(0) && referrer != address(0) && referrer != account
            && referrer != address(escrow) && referrer != address(registry) && referrer != address(marketplace);
    }

    /// @dev None, an account, a split (nested ones included), another payer, or a custodian (refused).
    function _referrerCandidate(uint256 seed) internal view returns (address) {
        uint256 k = seed % 8;
        if (k == 0) return address(0);
        if (k < 3) return referrerAccounts[k - 1];
        if (k < 6) return splits[k - 3];
        if (k == 6) return _payers[(seed >> 3) % _payers.length];
        uint256 custodian = (seed >> 3) % 3;
        return custodian == 0 ? address(escrow) : custodian == 1 ? address(registry) : address(marketplace);
    }

    /// @dev A valid random flow for `price`: up to 3 fixed amounts and 3 shares to accounts, splits and
    /// budgets (repeats allowed), referral shares up to 20% each, and a remainder (often the treasury).
    function _randomFlow(uint256 seed, uint256 price)
        internal
        view
        returns (IAgentMarketplace.FlowOfFunds memory flow)
    {
        flow.payerReferrerShare = uint32(_rand(seed, 0) % 200_001);
        flow.payeeReferrerShare = uint32(_rand(seed, 1) % 200_001);
        uint256 available = price - price * flow.payerReferrerShare / SCALE - price * flow.payeeReferrerShare / SCALE;
        uint256 fixedCount = _rand(seed, 2) % 4;
        flow.fixedAmounts = new IAgentMarketplace.FixedAmount[](fixedCount);
        for (uint256 i; i < fixedCount; ++i) {
            uint256 amount = bound(_rand(seed, 10 + i), 1, available / (fixedCount - i));
            available -= amount;
            flow.fixedAmounts[i] = IAgentMarketplace.FixedAmount(_recipient(_rand(seed, 20 + i)), uint64(amount));
        }
        uint256 shareCount = _rand(seed, 3) % 4;
        flow.shares = new IAgentMarketplace.Share[](shareCount);
        uint256 left = SCALE;
        for (uint256 j; j < shareCount; ++j) {
            uint256 share = bound(_rand(seed, 30 + j), 1, left / (shareCount - j));
            left -= share;
            flow.shares[j] = IAgentMarketplace.Share(_recipient(_rand(seed, 40 + j)), uint32(share));
        }
        uint256 r = _rand(seed, 4);
        flow.remainder = r % 3 == 0
            ? IAgentMarketplace.Recipient(IAgentMarketplace.RecipientKind.Account, address(0), 0)
            : _recipient(r);
    }

    function _recipient(uint256 r) internal view returns (IAgentMarketplace.Recipient memory) {
        uint256 k = r % 9;
        if (k < 4) return IAgentMarketplace.Recipient(IAgentMarketplace.RecipientKind.Account, flowAccounts[k], 0);
        if (k < 7) return IAgentMarketplace.Recipient(IAgentMarketplace.RecipientKind.Split, splits[k - 4], 0);
        return IAgentMarketplace.Recipient(
            IAgentMarketplace.RecipientKind.Budget, address(0), uint64(budgetIds[k - 7])
        );
    }

    function _rand(uint256 seed, uint256 i) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, i)));
    }

    function _flowOf(AgentGhost storage a) internal view returns (IAgentMarketplace.FlowOfFunds memory) {
        return abi.decode(a.flow, (IAgentMarketplace.FlowOfFunds));
    }

    /// @dev A split of two recipients (sorted here) and a remainder recipient.
    function _split(address a, uint256 shareA, address b, uint256 shareB, address remainder)
        internal
        returns (address)
    {
        ISplitsLedger.SplitRecipient[] memory recipients = new ISplitsLedger.SplitRecipient[](2);
        (recipients[0], recipients[1]) = a < b
            ? (ISplitsLedger.SplitRecipient(a, uint32(shareA)), ISplitsLedger.SplitRecipient(b, uint32(shareB)))
            : (ISplitsLedger.SplitRecipient(b, uint32(shareB)), ISplitsLedger.SplitRecipient(a, uint32(shareA)));
        return ledger.createSplit(ISplitsLedger.Split(recipients, remainder));
    }

    function _trackPaymentAddress(address paymentAddress) internal {
        if (_trackedAddress[paymentAddress]) return;
        _trackedAddress[paymentAddress] = true;
        _paymentAddresses.push(paymentAddress);
    }

    /// @dev Adds `account` to the accounts (the splits are counted on their own).
    function _know(address account) internal {
        if (_known[account] || account == splits[0] || account == splits[1] || account == splits[2]) return;
        _known[account] = true;
        _accounts.push(account);
    }

    function _violation(string memory what) internal {
        if (violations == 0) firstViolation = what;
        ++violations;
    }
}
